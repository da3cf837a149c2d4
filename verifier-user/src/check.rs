//! Offline drift check of a rootfs against SBOMs (issue 4).
