//! From the file's text to a [`Policy`]: TOML syntax and unknown keys
//! (serde, `deny_unknown_fields`), then every value: the version, modes,
//! verdict names, patterns, durations, rule names, exceptions. All problems
//! are collected, so one `verifier policy check` run lists everything to
//! fix.

use toml::Spanned;

use crate::{
    duration,
    error::Problem,
    glob::{Glob, Kind},
    policy::{
        DEFAULT_BLOCK_VERDICTS, DEFAULT_RULE, DRIFT_VERDICTS, Exception, ExceptionMatch, Matcher, Mode,
        Policy, Rule, VERSION,
    },
    schema,
};

/// Collects problems while compiling.
struct Checker<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(Problem::at(self.text, Some(at.span()), message));
    }

    fn mode(&mut self, m: &Spanned<String>) -> Mode {
        Mode::parse(m.get_ref()).unwrap_or_else(|| {
            self.problem(
                m,
                format!("unknown mode `{}`: write \"observe\", \"alert\" or \"enforce\"", m.get_ref()),
            );
            Mode::Alert
        })
    }

    fn verdicts(&mut self, list: &[Spanned<String>]) -> Vec<String> {
        let mut out = Vec::new();
        for v in list {
            let name = v.get_ref();
            if name == "ok" {
                self.problem(v, "`ok` cannot be blocked: list drift verdicts only");
            } else if !DRIFT_VERDICTS.contains(&name.as_str()) {
                self.problem(
                    v,
                    format!("unknown verdict `{name}`: known verdicts are {}", DRIFT_VERDICTS.join(", ")),
                );
            } else if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// A name pattern: not empty, no white space.
    fn pattern(&mut self, p: &Spanned<String>, what: &str) -> Glob {
        let s = p.get_ref();
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            self.problem(
                p,
                format!(
                    "{what} pattern `{s}` is empty or has white space: write e.g. \"registry.example/app*\""
                ),
            );
        }
        Glob::new(s, Kind::Name)
    }

    fn digest(&mut self, p: &Spanned<String>) -> Glob {
        let s = p.get_ref();
        let hex = s.strip_prefix("sha256:");
        let ok = hex.is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit() || c == '*'));
        if !ok {
            self.problem(p, format!("digest `{s}` is not `sha256:<hex>` (a trailing `*` may shorten it)"));
        }
        Glob::new(&s.to_ascii_lowercase(), Kind::Name)
    }

    fn matcher(&mut self, m: &schema::Match) -> Matcher {
        Matcher {
            images: m.images.iter().map(|p| self.pattern(p, "image")).collect(),
            digests: m.digests.iter().map(|p| self.digest(p)).collect(),
            namespaces: m.namespaces.iter().map(|p| self.pattern(p, "namespace")).collect(),
            containers: m.containers.iter().map(|p| self.pattern(p, "container")).collect(),
            labels: m.labels.iter().map(|(k, v)| (k.clone(), self.pattern(v, "label"))).collect(),
        }
    }

    fn exception(&mut self, e: &schema::Exception, scope: &str) -> Option<Exception> {
        let given: Vec<&Spanned<String>> = [&e.path, &e.sha256, &e.package].into_iter().flatten().collect();
        let Some(&first) = given.first() else {
            self.problems.push(Problem::at(
                self.text,
                e.reason.as_ref().map(Spanned::span),
                format!("an exception of {scope} names nothing: give one of path, sha256 or package"),
            ));
            return None;
        };
        if given.len() > 1 {
            self.problem(
                first,
                "an exception names one thing: split path, sha256 and package into separate exceptions",
            );
        }
        let reason = match &e.reason {
            Some(r) if !r.get_ref().trim().is_empty() => r.get_ref().trim().to_owned(),
            Some(r) => {
                self.problem(
                    r,
                    "the reason is empty: say why this is allowed (it is shown with every excepted finding)",
                );
                String::new()
            }
            None => {
                self.problem(first, "an exception needs a `reason`: say why this is allowed");
                String::new()
            }
        };
        let matches = if let Some(p) = &e.path {
            if !p.get_ref().starts_with('/') {
                self.problem(
                    p,
                    format!(
                        "path `{}` is not absolute: exceptions match paths inside the container, from /",
                        p.get_ref()
                    ),
                );
            }
            ExceptionMatch::Path(Glob::new(p.get_ref(), Kind::Path))
        } else if let Some(h) = &e.sha256 {
            let hex = h.get_ref().strip_prefix("sha256:").unwrap_or(h.get_ref()).to_ascii_lowercase();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                self.problem(h, "sha256 must be 64 hex digits (optionally after `sha256:`)");
            }
            ExceptionMatch::Sha256(hex)
        } else {
            let p = e.package.as_ref()?;
            if p.get_ref().trim().is_empty() {
                self.problem(
                    p,
                    "package is empty: write a package name (`curl`) or purl (`pkg:deb/debian/curl`)",
                );
            }
            ExceptionMatch::Package(p.get_ref().trim().to_owned())
        };
        Some(Exception { scope: scope.to_owned(), matches, reason })
    }
}

/// Compiles `text`; the SHA-256 is left for the caller.
pub(crate) fn compile(text: &str) -> Result<Policy, Vec<Problem>> {
    let file: schema::File = toml::from_str(text).map_err(|e| {
        vec![Problem::at(
            text,
            e.span(),
            format!("{} (see docs/policy.md for every key)", e.message().trim()),
        )]
    })?;
    let mut c = Checker { text, problems: Vec::new() };
    if *file.version.get_ref() != VERSION {
        c.problem(
            &file.version,
            format!("unsupported version {}: this agent reads version = {VERSION}", file.version.get_ref()),
        );
    }
    let defaults = file.defaults.unwrap_or_default();
    let default_mode = defaults.mode.as_ref().map_or(Mode::Alert, |m| c.mode(m));
    let default_block = match &defaults.block_verdicts {
        Some(list) => c.verdicts(list),
        None => DEFAULT_BLOCK_VERDICTS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let exceptions = file.exceptions.iter().filter_map(|e| c.exception(e, "global")).collect();
    let mut rules: Vec<Rule> = Vec::new();
    let mut catch_all: Option<String> = None;
    for r in &file.rules {
        let name = r.name.get_ref().trim().to_owned();
        if name.is_empty() || name == DEFAULT_RULE || name == "global" {
            c.problem(
                &r.name,
                format!("rule name `{name}` is empty or reserved (default, global): choose another"),
            );
        } else if rules.iter().any(|x| x.name == name) {
            c.problem(&r.name, format!("rule name `{name}` is used twice: rule names must be unique"));
        }
        if let Some(first) = &catch_all {
            c.problem(&r.name, format!("rule `{name}` can never apply: rule `{first}` before it matches every container (rules are tried in order)"));
        }
        let mode = c.mode(&r.mode);
        let matcher = r.matcher.as_ref().map(|m| c.matcher(m)).unwrap_or_default();
        if matcher.is_catch_all() && catch_all.is_none() {
            catch_all = Some(name.clone());
        }
        let block_verdicts = match &r.block_verdicts {
            Some(list) => c.verdicts(list),
            None => default_block.clone(),
        };
        let deny_writes = match &r.deny_writes {
            Some(d) if *d.get_ref() && mode != Mode::Enforce => {
                c.problem(d, "deny_writes only applies to mode = \"enforce\": remove it or enforce");
                false
            }
            Some(d) => *d.get_ref(),
            None => false,
        };
        let audit_for = r.stage.as_ref().and_then(|s| {
            if mode != Mode::Enforce {
                c.problem(
                    &s.audit_for,
                    "a stage only applies to mode = \"enforce\": remove [rule.stage] or enforce",
                );
            }
            duration::parse_duration(s.audit_for.get_ref()).map_err(|e| c.problem(&s.audit_for, e)).ok()
        });
        let exceptions =
            r.exceptions.iter().filter_map(|e| c.exception(e, &format!("rule {name}"))).collect::<Vec<_>>();
        let exceptions = exceptions.into_iter().map(|e| Exception { scope: name.clone(), ..e }).collect();
        rules.push(Rule { name, mode, matcher, block_verdicts, deny_writes, audit_for, exceptions });
    }
    // In file order, whatever order they were found in.
    c.problems.sort_by_key(|p| p.at.map(|a| (a.line, a.column)));
    if c.problems.is_empty() {
        Ok(Policy { version: VERSION, sha256: String::new(), default_mode, default_block, exceptions, rules })
    } else {
        Err(c.problems)
    }
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
