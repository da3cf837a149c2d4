//! SBOM readers, the manifest model and `sbom generate` (issue 4).
