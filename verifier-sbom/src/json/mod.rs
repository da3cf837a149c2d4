//! The JSON readers: SPDX 2 JSON, SPDX 3 JSON-LD, CycloneDX, Syft JSON, and
//! these wrapped in an in-toto statement, a DSSE envelope or a Sigstore
//! bundle.
//!
//! One streaming visitor ([`Doc`]) walks the top-level object of any of
//! them. The formats use disjoint keys (`spdxVersion`, `bomFormat`,
//! `@graph`, `payload`, `predicate`, ...), so the visitor needs no format
//! decision up front: each key is handled as it comes, lists element by
//! element, and the format is named at the end from the keys seen. Wrappers
//! recurse: a DSSE `payload` is base64-decoded and read with the same
//! visitor, an in-toto `predicate` is read in place.
//!
//! Memory stays bounded by the manifest plus one element, except for a DSSE
//! payload, which is held decoded while it is read (the envelope format puts
//! the whole SBOM in one base64 string).
//!
//! Errors: serde_json gives line and column; the visitors keep a stack of
//! keys and indices so that the error also says `files[1234].checksums`.

mod cdx;
mod chunked;
mod cursor;
mod envelope;
pub(crate) mod fast;
mod spdx2;
mod spdx3;
mod syft;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{self, BufRead};
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::error::Category;

use super::LoadOptions;
use super::error::{Location, SbomError, hint};
use super::links::{Links, note_image};
use super::model::{DigestBuf, Envelope, Manifest, SbomFormat};
use super::sink::{FileRefused, Sink};

/// How deep wrappers may nest (bundle -> envelope -> payload -> predicate
/// is 3).
const MAX_WRAP_DEPTH: u8 = 6;
/// Longest name, version, purl or id accepted.
const MAX_FIELD: usize = 64 * 1024;

/// A failure found by our own checks (not serde's), with what to do.
pub(crate) struct Fail {
    pub message: String,
    pub hint: &'static str,
}

impl From<FileRefused> for Fail {
    fn from(e: FileRefused) -> Fail {
        Fail { message: e.message(), hint: hint::TOO_LONG }
    }
}

/// Rejects absurdly long names and ids (paths are checked by the sink).
pub(crate) fn check_len(what: &str, s: Option<&String>) -> Result<(), Fail> {
    match s {
        Some(s) if s.len() > MAX_FIELD => Err(Fail {
            message: format!("a {what} is {} bytes long (at most {MAX_FIELD} accepted)", s.len()),
            hint: hint::TOO_LONG,
        }),
        _ => Ok(()),
    }
}

#[derive(Clone, Copy, Debug)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

/// Which formats' keys were seen.
#[derive(Default)]
pub(crate) struct Kind {
    spdx2: bool,
    cdx: bool,
    spdx3: bool,
    syft: bool,
    envelope: Option<Envelope>,
    predicate_type: Option<String>,
    signed: bool,
    message_signature: bool,
    /// in-toto subject: image name and `sha256:` digest.
    subject: Option<(String, String)>,
}

/// Everything the visitors share while reading one document.
pub(crate) struct Ctx {
    pub sink: Sink,
    pub links: Links,
    pub kind: Kind,
    /// Reused for each file's digests.
    pub digests: DigestBuf,
    /// SPDX 3 file hashes typed `PackageVerificationCode` (sbom-tool quirk).
    pub pvc_quirk: usize,
    stack: Vec<Seg>,
    hint: Option<&'static str>,
    /// An error already turned into an [`SbomError`] (from a nested payload).
    fatal: Option<SbomError>,
    wrap_depth: u8,
    other_keys: Vec<String>,
}

impl Ctx {
    fn new(file: &str) -> Ctx {
        Ctx {
            sink: Sink::new(SbomFormat::Spdx2Json, file),
            links: Links::default(),
            kind: Kind::default(),
            digests: DigestBuf::default(),
            pvc_quirk: 0,
            stack: Vec::new(),
            hint: None,
            fatal: None,
            wrap_depth: 0,
            other_keys: Vec::new(),
        }
    }

    fn fail<E: serde::de::Error>(&mut self, f: Fail) -> E {
        self.hint = Some(f.hint);
        E::custom(f.message)
    }

    /// The JSON path of the current place (`files[3].checksums`); a very
    /// deep one keeps its first and last segments.
    fn path(&self) -> Option<String> {
        if self.stack.is_empty() {
            return None;
        }
        let mut s = String::new();
        let n = self.stack.len();
        for (i, seg) in self.stack.iter().enumerate() {
            if n > 24 && (8..n - 16).contains(&i) {
                if i == 8 {
                    s.push_str("...");
                }
                continue;
            }
            match seg {
                Seg::Key(k) if s.is_empty() => s.push_str(k),
                Seg::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        Some(s)
    }

    /// Turns a serde_json error into an [`SbomError`] at the current place.
    fn error_from(&mut self, e: serde_json::Error, within: &str) -> SbomError {
        if let Some(f) = self.fatal.take() {
            return f;
        }
        let file = self.sink.file.clone();
        let full = e.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) if e.line() > 0 => full[..i].to_owned(),
            _ => full,
        };
        let message = format!("{within}{message}");
        let at = Location {
            line: (e.line() > 0).then_some(e.line() as u64),
            column: (e.line() > 0).then_some(e.column() as u64),
            path: self.path(),
        };
        match e.classify() {
            Category::Io => SbomError::Io {
                file,
                source: io::Error::new(e.io_error_kind().unwrap_or(io::ErrorKind::Other), message),
            },
            Category::Eof => SbomError::Truncated { file, at, message },
            Category::Syntax => {
                let hint = if message.contains("recursion limit") {
                    hint::NESTING
                } else if message.contains("unicode")
                    || message.contains("surrogate")
                    || message.contains("UTF-8")
                {
                    hint::UTF8
                } else {
                    "the file is not valid JSON: regenerate it, or check that it was not altered"
                };
                SbomError::Malformed { file, at, message, hint }
            }
            Category::Data => {
                let hint = self.hint.take().unwrap_or(hint::REGENERATE);
                SbomError::Malformed { file, at, message, hint }
            }
        }
    }
}

/// Reads a list element by element (or `null`), handing each to `f`.
pub(crate) struct Each<'c, T, F> {
    ctx: &'c mut Ctx,
    f: F,
    what: &'static str,
    _t: PhantomData<fn() -> T>,
}

impl<'c, T, F> Each<'c, T, F> {
    pub(crate) fn new(ctx: &'c mut Ctx, what: &'static str, f: F) -> Self {
        Each { ctx, f, what, _t: PhantomData }
    }
}

impl<'de, T, F> DeserializeSeed<'de> for Each<'_, T, F>
where
    T: Deserialize<'de>,
    F: FnMut(&mut Ctx, T) -> Result<(), Fail>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T, F> Visitor<'de> for Each<'_, T, F>
where
    T: Deserialize<'de>,
    F: FnMut(&mut Ctx, T) -> Result<(), Fail>,
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of {}", self.what)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.ctx.stack.push(Seg::Index(i));
            let Some(item) = seq.next_element::<T>()? else {
                self.ctx.stack.pop();
                return Ok(());
            };
            if let Err(f) = (self.f)(self.ctx, item) {
                return Err(self.ctx.fail(f));
            }
            self.ctx.stack.pop();
            i += 1;
        }
    }
}

macro_rules! top_keys {
    ($($var:ident = $name:literal,)*) => {
        /// The top-level keys any of the formats use.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        enum Key { $($var,)* Other }

        impl Key {
            fn parse(s: &str) -> Key {
                match s { $($name => Key::$var,)* _ => Key::Other }
            }
            fn name(self) -> &'static str {
                match self { $(Key::$var => $name,)* Key::Other => "?" }
            }
        }
    };
}

top_keys! {
    SpdxVersion = "spdxVersion",
    Name = "name",
    Namespace = "documentNamespace",
    Files = "files",
    Packages = "packages",
    Relationships = "relationships",
    BomFormat = "bomFormat",
    SpecVersion = "specVersion",
    Serial = "serialNumber",
    Metadata = "metadata",
    Components = "components",
    Context = "@context",
    Graph = "@graph",
    Descriptor = "descriptor",
    Schema = "schema",
    Artifacts = "artifacts",
    ArtifactRelationships = "artifactRelationships",
    Source = "source",
    PayloadType = "payloadType",
    Payload = "payload",
    Signatures = "signatures",
    DsseEnvelope = "dsseEnvelope",
    MessageSignature = "messageSignature",
    Type = "_type",
    PredicateType = "predicateType",
    Predicate = "predicate",
    Subject = "subject",
    Data = "Data",
}

/// A top-level key, plus the name of an unknown one (for the "unknown
/// format" message; only the first few are kept).
struct KeySeed<'c>(&'c mut Vec<String>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
        let k = Key::parse(v);
        if k == Key::Other && self.0.len() < 8 {
            self.0.push(v.chars().take(40).collect());
        }
        Ok(k)
    }
}

/// The top-level object of any supported JSON document (or of a wrapped
/// predicate / payload).
struct Doc<'c> {
    ctx: &'c mut Ctx,
}

impl<'de> DeserializeSeed<'de> for Doc<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Subject {
    name: Option<String>,
    #[serde(deserialize_with = "crate::de::nullable")]
    digest: std::collections::BTreeMap<String, String>,
}

impl<'de> Visitor<'de> for Doc<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SBOM document (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let mut seen = 0u64;
        while let Some(key) = map.next_key_seed(KeySeed(&mut ctx.other_keys))? {
            if key == Key::Other {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            ctx.enter_key(key, &mut seen).map_err(|f| ctx.fail::<A::Error>(f))?;
            map.next_value_seed(Value { ctx: &mut *ctx, key })?;
            ctx.stack.pop();
        }
        Ok(())
    }
}

impl Ctx {
    /// Checks `key` is not a duplicate in this object and enters it.
    fn enter_key(&mut self, key: Key, seen: &mut u64) -> Result<(), Fail> {
        let bit = 1u64 << (key as u32);
        if *seen & bit != 0 {
            return Err(Fail {
                message: format!("the key `{}` appears twice", key.name()),
                hint: hint::DUPLICATE,
            });
        }
        *seen |= bit;
        self.stack.push(Seg::Key(key.name()));
        Ok(())
    }
}

/// The value of one top-level key, whatever the format.
struct Value<'c> {
    ctx: &'c mut Ctx,
    key: Key,
}

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let ctx = self.ctx;
        let string = |d: D| Option::<String>::deserialize(d);
        match self.key {
            Key::Other => {
                IgnoredAny::deserialize(d)?;
            }
            Key::SpdxVersion => {
                let v = string(d)?;
                check_len("version", v.as_ref()).map_err(|f| ctx.fail::<D::Error>(f))?;
                ctx.kind.spdx2 = true;
                ctx.sink.m.source_mut().spec_version = v;
            }
            Key::Name => {
                let v = string(d)?;
                check_len("name", v.as_ref()).map_err(|f| ctx.fail::<D::Error>(f))?;
                ctx.sink.m.source_mut().document_name = v;
            }
            Key::Namespace | Key::Serial => {
                let v = string(d)?;
                check_len("namespace", v.as_ref()).map_err(|f| ctx.fail::<D::Error>(f))?;
                ctx.sink.m.source_mut().namespace = v;
            }
            Key::Files => Each::new(ctx, "files", spdx2::file).deserialize(d)?,
            Key::Packages => Each::new(ctx, "packages", spdx2::package).deserialize(d)?,
            Key::Relationships => Each::new(ctx, "relationships", spdx2::relationship).deserialize(d)?,
            Key::BomFormat => {
                let v = string(d)?;
                ctx.kind.cdx |= v.is_some_and(|v| v.eq_ignore_ascii_case("cyclonedx"));
            }
            Key::SpecVersion => {
                let v = string(d)?;
                check_len("version", v.as_ref()).map_err(|f| ctx.fail::<D::Error>(f))?;
                ctx.kind.cdx = true;
                ctx.sink.m.source_mut().spec_version = v;
            }
            Key::Metadata => {
                let meta = cdx::Metadata::deserialize(d)?;
                cdx::metadata(ctx, meta).map_err(|f| ctx.fail::<D::Error>(f))?;
            }
            Key::Components => {
                ctx.kind.cdx = true;
                cdx::Components { ctx }.deserialize(d)?;
            }
            Key::Context => {
                let v = serde_json::Value::deserialize(d)?;
                ctx.kind.spdx3 |= v.to_string().contains("spdx");
            }
            Key::Graph => {
                ctx.kind.spdx3 = true;
                Each::new(ctx, "elements", spdx3::element).deserialize(d)?;
            }
            Key::Descriptor | Key::Schema => {
                let v = syft::Descriptor::deserialize(d)?;
                ctx.kind.syft |= v.is_syft();
            }
            Key::Artifacts => Each::new(ctx, "artifacts", syft::artifact).deserialize(d)?,
            Key::ArtifactRelationships => {
                Each::new(ctx, "relationships", syft::relationship).deserialize(d)?
            }
            Key::Source => {
                let v = syft::Source::deserialize(d)?;
                syft::source(ctx, v);
            }
            Key::PayloadType => {
                IgnoredAny::deserialize(d)?;
                ctx.kind.envelope.get_or_insert(Envelope::Dsse);
            }
            Key::Payload => {
                ctx.kind.envelope.get_or_insert(Envelope::Dsse);
                let b64 = String::deserialize(d)?;
                envelope::payload(ctx, &b64)
                    .map_err(|()| D::Error::custom("the payload could not be read"))?;
            }
            Key::Signatures => {
                IgnoredAny::deserialize(d)?;
                ctx.kind.signed = true;
            }
            Key::DsseEnvelope => {
                ctx.kind.envelope = Some(Envelope::SigstoreBundle);
                ctx.kind.signed = true;
                envelope::nested(ctx, d)?;
            }
            Key::MessageSignature => {
                IgnoredAny::deserialize(d)?;
                ctx.kind.message_signature = true;
            }
            Key::Type => {
                if string(d)?.is_some_and(|v| v.contains("in-toto")) {
                    ctx.kind.envelope.get_or_insert(Envelope::InToto);
                }
            }
            Key::PredicateType => {
                let v = string(d)?;
                check_len("predicate type", v.as_ref()).map_err(|f| ctx.fail::<D::Error>(f))?;
                ctx.kind.predicate_type = v;
            }
            Key::Predicate | Key::Data => {
                ctx.kind.envelope.get_or_insert(Envelope::InToto);
                envelope::nested(ctx, d)?;
            }
            Key::Subject => {
                let subjects: Vec<Subject> = Option::deserialize(d)?.unwrap_or_default();
                for s in subjects {
                    if let (Some(name), Some(digest)) = (s.name, s.digest.get("sha256")) {
                        ctx.kind.subject.get_or_insert((name, format!("sha256:{digest}")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Reads a JSON SBOM (or a JSON-lines file of DSSE envelopes) from a
/// stream, in bounded memory (see [`chunked`]).
pub(crate) fn read(
    r: impl BufRead,
    name: &str,
    opts: &LoadOptions,
    hinted: Option<SbomFormat>,
) -> Result<Manifest, SbomError> {
    chunked::read(r, name, opts, hinted)
}

/// Reads a JSON SBOM held in memory, with serde_json over the whole slice
/// (a second, independent walk of the same element parsers: the tests and
/// fuzz targets check that both paths agree).
pub(crate) fn read_slice(
    bytes: &[u8],
    name: &str,
    opts: &LoadOptions,
    hinted: Option<SbomFormat>,
) -> Result<Manifest, SbomError> {
    read_with(serde_json::Deserializer::from_slice(bytes), name, opts, hinted)
}

fn read_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    name: &str,
    opts: &LoadOptions,
    hinted: Option<SbomFormat>,
) -> Result<Manifest, SbomError> {
    let mut ctx = Ctx::new(name);
    if let Err(e) = (Doc { ctx: &mut ctx }).deserialize(&mut de) {
        return Err(ctx.error_from(e, ""));
    }
    // `.intoto.jsonl`: one envelope per line, each read into this manifest.
    loop {
        match de.end() {
            Ok(()) => break,
            Err(e) if ctx.kind.envelope.is_none() => return Err(ctx.error_from(e, "")),
            Err(_) => {
                if let Err(e) = (Doc { ctx: &mut ctx }).deserialize(&mut de) {
                    return Err(ctx.error_from(e, ""));
                }
            }
        }
    }
    finish(ctx, name, opts, hinted)
}

fn finish(
    mut ctx: Ctx,
    name: &str,
    opts: &LoadOptions,
    hinted: Option<SbomFormat>,
) -> Result<Manifest, SbomError> {
    let k = &ctx.kind;
    let format = if k.spdx2 {
        SbomFormat::Spdx2Json
    } else if k.spdx3 {
        SbomFormat::Spdx3JsonLd
    } else if k.cdx {
        SbomFormat::CycloneDxJson
    } else if k.syft {
        SbomFormat::SyftJson
    } else if let Some(f) = hinted.filter(|_| ctx.sink.m.len() + ctx.sink.m.packages().len() > 0) {
        f
    } else {
        let reason = if k.message_signature {
            "it is a Sigstore bundle that signs a blob (messageSignature), not an attestation carrying an SBOM"
                .to_owned()
        } else if k.envelope.is_some() {
            format!(
                "it is an in-toto attestation whose predicate ({}) is not an SBOM",
                k.predicate_type.as_deref().unwrap_or("no predicateType")
            )
        } else {
            format!("a JSON object with keys {:?} and none that SPDX, CycloneDX or Syft use", ctx.other_keys)
        };
        return Err(SbomError::UnknownFormat { file: name.to_owned(), reason });
    };
    let envelope = k.envelope;
    let signed = k.signed;
    let subject = ctx.kind.subject.take();
    ctx.links.apply(&mut ctx.sink.m);
    let src = ctx.sink.m.source_mut();
    src.format = format;
    src.envelope = envelope;
    if let Some((name, digest)) = subject {
        note_image(src, &name, None, Some(digest));
    }
    if envelope.is_some() {
        let what = if signed { "its signatures were not checked" } else { "it carries no signature" };
        ctx.sink.m.warn(format!(
            "the SBOM came wrapped in an attestation and {what} (signature checking is not built yet): trust it \
             only as far as you trust where the file came from"
        ));
    }
    if ctx.pvc_quirk > 0 {
        ctx.sink.m.warn(format!(
            "{} file hash(es) were typed PackageVerificationCode instead of Hash (a known sbom-tool quirk) and \
             were read as file hashes",
            ctx.pvc_quirk
        ));
    }
    Ok(ctx.sink.finish(opts))
}
