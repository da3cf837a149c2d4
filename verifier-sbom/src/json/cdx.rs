//! CycloneDX JSON 1.2 to 1.7 components.
//!
//! Files are components of `type: file`. Their path is, in order of trust:
//! properties tools use for it (`syft:location:0:path`, any name ending in
//! `:path`, cdxgen's `SrcFile`; one file component can list several
//! locations), then
//! `evidence.occurrences[].location` (1.5+), then `name`. Components nest
//! (`components` inside a component): a file nested under a library belongs
//! to that library. Component-level hashes of libraries are package
//! digests (a jar, an npm tarball), not files in the image, and are not used.

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::super::error::hint;
use super::super::links::{is_image_purl, note_image};
use super::super::model::{HashAlg, PackageRef};
use super::{Ctx, Fail, Seg, check_len};
use crate::de::{Alg, Hex, nullable};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Hash {
    alg: Alg,
    content: Hex,
}

/// Whether a file component's property of this name holds its path in
/// the image: syft's `syft:location:N:path` (any name ending in `:path`),
/// cdxgen's `SrcFile` (its file components are named by base name only).
pub(super) fn is_path_property(name: &str) -> bool {
    name.ends_with(":path") || name == "SrcFile"
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Property {
    name: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Occurrence {
    location: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Evidence {
    #[serde(deserialize_with = "nullable")]
    occurrences: Vec<Occurrence>,
}

/// `metadata`: only the component the BOM describes (the image).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Metadata {
    #[serde(deserialize_with = "nullable")]
    component: Option<MetaComponent>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MetaComponent {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
    #[serde(deserialize_with = "nullable")]
    hashes: Vec<Hash>,
}

pub(crate) fn metadata(ctx: &mut Ctx, m: Metadata) -> Result<(), Fail> {
    let Some(c) = m.component else { return Ok(()) };
    check_len("name", c.name.as_ref())?;
    check_len("version", c.version.as_ref())?;
    check_len("purl", c.purl.as_ref())?;
    let is_image = c.kind.as_deref() == Some("container") || c.purl.as_deref().is_some_and(is_image_purl);
    if let (true, Some(name)) = (is_image, c.name) {
        let digest = c.version.filter(|v| v.starts_with("sha256:")).or_else(|| {
            c.hashes.iter().find_map(|h| match (&h.alg, h.content.value()) {
                (Alg::Known(HashAlg::Sha256), Ok(v)) => Some(format!("sha256:{}", hex::encode(v))),
                _ => None,
            })
        });
        note_image(ctx.sink.m.source_mut(), &name, c.purl.as_deref(), digest);
    }
    Ok(())
}

/// A `components` list (top level or nested). Yields the indices of files
/// in it that no package claimed yet, for the enclosing component to claim.
pub(crate) struct Components<'c> {
    pub ctx: &'c mut Ctx,
}

impl<'de> DeserializeSeed<'de> for Components<'_> {
    type Value = Vec<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<usize>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Components<'_> {
    type Value = Vec<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of components")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<usize>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<usize>, A::Error> {
        let mut unclaimed = Vec::new();
        let mut i = 0;
        loop {
            self.ctx.stack.push(Seg::Index(i));
            let Some(files) = seq.next_element_seed(Component { ctx: &mut *self.ctx })? else {
                self.ctx.stack.pop();
                return Ok(unclaimed);
            };
            unclaimed.extend(files);
            self.ctx.stack.pop();
            i += 1;
        }
    }
}

pub(crate) struct Component<'c> {
    ctx: &'c mut Ctx,
}

impl Component<'_> {
    pub(crate) fn seed(ctx: &mut Ctx) -> Component<'_> {
        Component { ctx }
    }
}

impl<'de> DeserializeSeed<'de> for Component<'_> {
    type Value = Vec<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<usize>, D::Error> {
        d.deserialize_map(self)
    }
}

/// `"type": "file"`, read without allocating.
struct IsFile(bool);

impl<'de> Deserialize<'de> for IsFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IsFile, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IsFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a component type")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IsFile, E> {
                Ok(IsFile(v == "file"))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<IsFile, E> {
                Ok(IsFile(false))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Type,
    Name,
    Version,
    Purl,
    Hashes,
    Properties,
    Evidence,
    Components,
    Other,
}

impl Field {
    fn parse(s: &str) -> Field {
        match s {
            "type" => Field::Type,
            "name" => Field::Name,
            "version" => Field::Version,
            "purl" => Field::Purl,
            "hashes" => Field::Hashes,
            "properties" => Field::Properties,
            "evidence" => Field::Evidence,
            "components" => Field::Components,
            _ => Field::Other,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Field::Type => "type",
            Field::Name => "name",
            Field::Version => "version",
            Field::Purl => "purl",
            Field::Hashes => "hashes",
            Field::Properties => "properties",
            Field::Evidence => "evidence",
            Field::Components => "components",
            Field::Other => "?",
        }
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a component field")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(Field::parse(v))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for Component<'_> {
    type Value = Vec<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a component (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<usize>, A::Error> {
        let ctx = self.ctx;
        let mut is_file = IsFile(false);
        let (mut name, mut version, mut purl) = (None::<String>, None::<String>, None::<String>);
        let mut hashes: Vec<Hash> = Vec::new();
        let mut properties: Vec<Property> = Vec::new();
        let mut evidence: Option<Evidence> = None;
        let mut children: Vec<usize> = Vec::new();
        let mut seen = 0u16;
        while let Some(field) = map.next_key::<Field>()? {
            if field == Field::Other {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let bit = 1u16 << (field as u16);
            if seen & bit != 0 {
                let f = Fail {
                    message: format!("the key `{}` appears twice", field.name()),
                    hint: hint::DUPLICATE,
                };
                return Err(ctx.fail(f));
            }
            seen |= bit;
            ctx.stack.push(Seg::Key(field.name()));
            match field {
                Field::Type => is_file = map.next_value()?,
                Field::Name => name = map.next_value()?,
                Field::Version => version = map.next_value()?,
                Field::Purl => purl = map.next_value()?,
                Field::Hashes => hashes = map.next_value::<Option<_>>()?.unwrap_or_default(),
                Field::Properties => properties = map.next_value::<Option<_>>()?.unwrap_or_default(),
                Field::Evidence => evidence = map.next_value()?,
                Field::Components => children = map.next_value_seed(Components { ctx: &mut *ctx })?,
                Field::Other => {}
            }
            ctx.stack.pop();
        }
        let checked = check_len("component name", name.as_ref())
            .and_then(|()| check_len("component version", version.as_ref()))
            .and_then(|()| check_len("purl", purl.as_ref()));
        if let Err(f) = checked {
            return Err(ctx.fail(f));
        }
        if is_file.0 {
            let mut extra: Vec<String> = properties
                .into_iter()
                .filter(|p| p.name.as_deref().is_some_and(is_path_property))
                .filter_map(|p| p.value)
                .collect();
            if extra.is_empty() {
                extra.extend(evidence.into_iter().flat_map(|e| e.occurrences).filter_map(|o| o.location));
            }
            let paths = if extra.is_empty() { name.as_slice() } else { extra.as_slice() };
            let hint_path = paths.first().map_or("", String::as_str);
            ctx.digests.clear();
            for h in &hashes {
                ctx.sink.push_decoded(&mut ctx.digests, &h.alg, &h.content, hint_path);
            }
            for p in paths {
                match ctx.sink.add_file(p, &ctx.digests, None, false) {
                    Ok(Some(i)) => children.push(i),
                    Ok(None) => {}
                    Err(e) => return Err(ctx.fail(e.into())),
                }
            }
            if paths.is_empty() {
                // Counted as a file without a usable path.
                let _ = ctx.sink.add_file("", &ctx.digests, None, false);
            }
            return Ok(children);
        }
        if name.is_none() && version.is_none() && purl.is_none() {
            if children.is_empty() {
                return Ok(children);
            }
            return Err(A::Error::custom(
                "a component with nested file components has no name, version or purl",
            ));
        }
        let package = ctx.sink.m.add_package(PackageRef { name: name.unwrap_or_default(), version, purl });
        for f in children {
            ctx.sink.m.set_package_if_none(f, package);
        }
        Ok(Vec::new())
    }
}
