//! JSON readers (in progress: lands in the next commit).

use std::io::BufRead;

use super::error::SbomError;
use super::model::{Manifest, SbomFormat};
use super::LoadOptions;

pub(crate) fn read(
    _r: impl BufRead,
    name: &str,
    _opts: &LoadOptions,
    _format: Option<SbomFormat>,
) -> Result<Manifest, SbomError> {
    Err(SbomError::UnknownFormat { file: name.to_owned(), reason: "JSON readers are not built yet".into() })
}
