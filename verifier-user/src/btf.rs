//! btf (in progress)
