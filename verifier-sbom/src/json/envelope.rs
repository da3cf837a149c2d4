//! Wrapped documents: an in-toto statement, a DSSE envelope's base64
//! payload, a cosign predicate held as JSON text. Each is read in place by
//! the same visitor as a plain SBOM, at most `MAX_WRAP_DEPTH` levels deep,
//! and an error inside one names its position in the inner document.

use std::fmt;

use base64::Engine as _;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::{Ctx, Doc, Fail, MAX_WRAP_DEPTH};
use crate::error::{Location, SbomError, hint};

/// A wrapped document read in place: an object, a JSON string holding one
/// (cosign's legacy `{"Data": "..."}` predicate), or `null`.
pub(super) fn nested<'de, D: Deserializer<'de>>(ctx: &mut Ctx, d: D) -> Result<(), D::Error> {
    ctx.enter_wrapper().map_err(|f| ctx.fail::<D::Error>(f))?;
    Nested { ctx: &mut *ctx }.deserialize(d)?;
    ctx.wrap_depth -= 1;
    Ok(())
}

impl Ctx {
    pub(super) fn enter_wrapper(&mut self) -> Result<(), Fail> {
        if self.wrap_depth >= MAX_WRAP_DEPTH {
            return Err(Fail {
                message: "wrappers (envelope, statement, predicate) nest too deep".into(),
                hint: hint::NESTING,
            });
        }
        self.wrap_depth += 1;
        Ok(())
    }
}

struct Nested<'c> {
    ctx: &'c mut Ctx,
}

impl<'de> DeserializeSeed<'de> for Nested<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SBOM object or a JSON string holding one")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Doc { ctx: self.ctx }.visit_map(map)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        read_embedded(self.ctx, v.as_bytes(), "in the JSON text of the predicate: ")
            .map_err(|()| E::custom("the embedded document could not be read"))
    }
}

/// Decodes a DSSE payload (base64 of an in-toto statement) and reads it.
pub(super) fn payload(ctx: &mut Ctx, b64: &str) -> Result<(), ()> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let decoded =
        [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(b64).ok());
    let Some(bytes) = decoded else {
        let at = Location { path: ctx.path(), ..Location::default() };
        ctx.fatal.get_or_insert(SbomError::Malformed {
            file: ctx.sink.file.clone(),
            at,
            message: "the DSSE payload is not valid base64".into(),
            hint: "the envelope is damaged: download the attestation again",
        });
        return Err(());
    };
    if let Err(f) = ctx.enter_wrapper() {
        let at = Location { path: ctx.path(), ..Location::default() };
        ctx.fatal.get_or_insert(SbomError::Malformed {
            file: ctx.sink.file.clone(),
            at,
            message: f.message,
            hint: f.hint,
        });
        return Err(());
    }
    let r = read_embedded(ctx, &bytes, "in the base64-decoded DSSE payload: ");
    ctx.wrap_depth -= 1;
    r
}

/// Reads a JSON document held in memory with the same visitor; an error is
/// recorded as fatal with positions inside that document.
fn read_embedded(ctx: &mut Ctx, bytes: &[u8], within: &str) -> Result<(), ()> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let depth = ctx.stack.len();
    match (Doc { ctx: &mut *ctx }).deserialize(&mut de).and_then(|()| de.end()) {
        Ok(()) => Ok(()),
        Err(e) => {
            let err = ctx.error_from(e, within);
            ctx.fatal.get_or_insert(err);
            ctx.stack.truncate(depth);
            Err(())
        }
    }
}
