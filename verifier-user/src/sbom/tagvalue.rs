//! SPDX tag-value reader (in progress: lands in the next commit).

use std::io::BufRead;

use super::error::SbomError;
use super::model::Manifest;
use super::LoadOptions;

pub(crate) fn read(_r: impl BufRead, name: &str, _opts: &LoadOptions) -> Result<Manifest, SbomError> {
    Err(SbomError::UnknownFormat { file: name.to_owned(), reason: "the tag-value reader is not built yet".into() })
}
