//! Reads a description (JSON or YAML) and bundles it into one `serde_json::Value`: `$ref`s to
//! sibling files are copied under `/x-vigil-external/N` and rewritten to local references, so
//! the route compiler and vigil-schema see a single document. References that leave the
//! document's directory or go to the network are refused: a policy must be what was reviewed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::depth::{MAX_NESTING, too_deep};
use crate::error::PolicyError;
use crate::path::decode_fragment;

/// Largest file a description (or a file it references) may be.
pub const MAX_DOCUMENT_BYTES: u64 = vigil_files::POLICY_LIMIT;
/// Where bundled external targets go in the root document.
pub(crate) const EXTERNAL_KEY: &str = "x-vigil-external";
const MAX_FILES: usize = 256;
const MAX_SLOTS: usize = 100_000;

/// Parses one file: JSON when it looks like JSON, YAML otherwise (YAML 1.2 is a superset).
pub(crate) fn read_document(path: &Path) -> Result<Value, PolicyError> {
    parse_text(&read_text(path)?, path)
}

/// The text of a policy file: a regular file of at most [`MAX_DOCUMENT_BYTES`], checked before
/// anything is read and read no further than the limit, whatever the file claims.
fn read_text(path: &Path) -> Result<String, PolicyError> {
    vigil_files::read_to_string(path, vigil_files::FileKind::PolicyDocument)
        .map_err(|e| file_error(path, e))
}

/// The reader's refusal as the policy's own error.
pub(crate) fn file_error(path: &Path, e: vigil_files::FileError) -> PolicyError {
    let path = path.to_path_buf();
    match e {
        vigil_files::FileError::NotRegular { file_type, .. } => PolicyError::NotAFile {
            path,
            kind: file_type
                .strip_prefix("a ")
                .or_else(|| file_type.strip_prefix("an "))
                .unwrap_or(file_type),
        },
        vigil_files::FileError::TooLarge { size, .. } => PolicyError::TooLarge {
            path,
            size,
            limit: MAX_DOCUMENT_BYTES,
        },
        vigil_files::FileError::Grew { .. } => PolicyError::TooLarge {
            path,
            size: MAX_DOCUMENT_BYTES + 1,
            limit: MAX_DOCUMENT_BYTES,
        },
        vigil_files::FileError::Io { error, .. } => PolicyError::Read {
            path,
            source: error,
        },
        other => PolicyError::Parse {
            path,
            format: "UTF-8 text",
            detail: other.to_string(),
        },
    }
}

/// Parses a document's text. Its nesting is measured first: the YAML parser is quadratic in
/// it and would take minutes on a hostile 200 KB file before refusing it (see `depth`).
pub(crate) fn parse_text(text: &str, path: &Path) -> Result<Value, PolicyError> {
    if let Some(line) = too_deep(text) {
        return Err(PolicyError::TooDeep {
            path: path.to_path_buf(),
            line,
            limit: MAX_NESTING,
        });
    }
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| PolicyError::Parse {
            path: path.to_path_buf(),
            format: "JSON",
            detail: e.to_string(),
        })
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| PolicyError::Parse {
            path: path.to_path_buf(),
            format: "YAML",
            detail: e.to_string(),
        })
    }
}

/// Loads `path` and every sibling file it references into one document.
pub(crate) fn load_bundled(path: &Path) -> Result<Value, PolicyError> {
    let canonical = path.canonicalize().map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = canonical.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut root = read_document(&canonical)?;
    if root.get(EXTERNAL_KEY).is_some() {
        return Err(PolicyError::Invalid {
            pointer: format!("/{EXTERNAL_KEY}"),
            reason: "this key is reserved for bundled references; rename it".into(),
            more: 0,
        });
    }
    let mut b = Bundler {
        dir,
        root: canonical.clone(),
        files: HashMap::new(),
        slots: HashMap::new(),
        bundled: Vec::new(),
    };
    b.rewrite(&mut root, &canonical, &mut String::new(), false)?;
    let mut next = 0;
    while next < b.bundled.len() {
        let (file, fragment) = b.bundled[next].0.clone();
        let mut target = b.target(&file, &fragment)?;
        let mut at = fragment.clone();
        b.rewrite(&mut target, &file, &mut at, false)?;
        b.bundled[next].1 = target;
        next += 1;
    }
    if !b.bundled.is_empty() {
        let values = b.bundled.into_iter().map(|(_, v)| v).collect();
        if let Value::Object(map) = &mut root {
            map.insert(EXTERNAL_KEY.into(), Value::Array(values));
        }
    }
    Ok(root)
}

type Target = (PathBuf, String);

struct Bundler {
    dir: PathBuf,
    root: PathBuf,
    files: HashMap<PathBuf, Value>,
    slots: HashMap<Target, usize>,
    bundled: Vec<(Target, Value)>,
}

impl Bundler {
    /// Rewrites every `$ref` inside `v` (which sits at `at` in `file`).
    fn rewrite(
        &mut self,
        v: &mut Value,
        file: &Path,
        at: &mut String,
        names: bool,
    ) -> Result<(), PolicyError> {
        match v {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    if key == "$ref" && !names {
                        if let Value::String(r) = child {
                            *r = self.reference(r, file, at)?;
                        }
                    } else if names || !skipped(key, child) {
                        let child_names = !names && is_name_map(key);
                        self.rewrite(child, file, at, child_names)?;
                    }
                    at.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&i.to_string());
                    self.rewrite(item, file, at, false)?;
                    at.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The local reference that replaces `r`, written in `file` at `at`.
    fn reference(&mut self, r: &str, file: &Path, at: &str) -> Result<String, PolicyError> {
        let refuse = |reason: String| PolicyError::Ref {
            file: file.to_path_buf(),
            pointer: at.to_string(),
            reference: r.to_string(),
            reason,
        };
        let (path_part, fragment) = r.split_once('#').unwrap_or((r, ""));
        let Some(fragment) = decode_fragment(fragment) else {
            return Err(refuse("the fragment is not valid percent-encoding".into()));
        };
        let lower = path_part.to_ascii_lowercase();
        if lower.starts_with("http:") || lower.starts_with("https:") || lower.starts_with("//") {
            return Err(refuse(
                "remote references are refused (a policy must not change when a server does); \
                 copy the schema into the document or a file beside it"
                    .into(),
            ));
        }
        if path_part.contains(':') {
            return Err(refuse(
                "only `#/pointer` and relative file references are supported".into(),
            ));
        }
        let target_file = if path_part.is_empty() {
            file.to_path_buf()
        } else {
            let base = file.parent().unwrap_or(Path::new("/"));
            let joined = base.join(path_part);
            let canonical = joined
                .canonicalize()
                .map_err(|e| refuse(format!("cannot open {}: {e}", joined.display())))?;
            if !canonical.starts_with(&self.dir) {
                return Err(refuse(format!(
                    "escapes the document's directory {}; keep referenced files beside the \
                     description",
                    self.dir.display()
                )));
            }
            canonical
        };
        if !fragment.is_empty() && !fragment.starts_with('/') {
            if target_file == self.root {
                return Ok(r.to_string());
            }
            return Err(refuse(
                "anchors in other files are not supported; use a JSON pointer".into(),
            ));
        }
        if target_file == self.root {
            return Ok(format!("#{}", encode_fragment(&fragment)));
        }
        let key = (target_file, fragment.into_owned());
        let slot = match self.slots.get(&key) {
            Some(&slot) => slot,
            None => {
                if self.bundled.len() >= MAX_SLOTS {
                    return Err(refuse(format!("more than {MAX_SLOTS} external targets")));
                }
                let slot = self.bundled.len();
                self.slots.insert(key.clone(), slot);
                self.bundled.push((key, Value::Null));
                slot
            }
        };
        Ok(format!("#/{EXTERNAL_KEY}/{slot}"))
    }

    /// A copy of the value at `fragment` in `file`.
    fn target(&mut self, file: &Path, fragment: &str) -> Result<Value, PolicyError> {
        if !self.files.contains_key(file) {
            if self.files.len() >= MAX_FILES {
                return Err(PolicyError::Invalid {
                    pointer: String::new(),
                    reason: format!("references more than {MAX_FILES} files"),
                    more: 0,
                });
            }
            let doc = read_document(file)?;
            self.files.insert(file.to_path_buf(), doc);
        }
        self.files
            .get(file)
            .and_then(|doc| doc.pointer(fragment))
            .cloned()
            .ok_or_else(|| PolicyError::Ref {
                file: file.to_path_buf(),
                pointer: fragment.to_string(),
                reference: format!("{}#{fragment}", file.display()),
                reason: "the target does not exist; fix the pointer".into(),
            })
    }
}

/// Members holding data, not description: a `$ref` key in an example is not a reference.
fn skipped(key: &str, v: &Value) -> bool {
    key == "example" || key.starts_with("x-") || (key == "examples" && v.is_array())
}

/// Members whose keys are names chosen by the author (a property may be called `example`).
fn is_name_map(key: &str) -> bool {
    matches!(
        key,
        "properties" | "patternProperties" | "$defs" | "definitions"
    )
}

fn encode_fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for c in pointer.chars() {
        match c {
            '%' => out.push_str("%25"),
            ' ' => out.push_str("%20"),
            '"' => out.push_str("%22"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testutil::TempDir;
    use serde_json::json;

    #[test]
    fn parses_json_and_yaml_with_numeric_keys() {
        let d = parse_text("openapi: 3.0.3\npaths:\n  /a:\n    get:\n      responses:\n        200:\n          description: ok\n", Path::new("a.yaml")).unwrap();
        assert_eq!(d["openapi"], "3.0.3");
        assert!(d.pointer("/paths/~1a/get/responses/200").is_some());
        let e = parse_text("{\"a\": ", Path::new("a.json")).unwrap_err();
        assert!(e.to_string().contains("as JSON"), "{e}");
        let e = parse_text("a: [", Path::new("a.yaml")).unwrap_err();
        assert!(e.to_string().contains("as YAML"), "{e}");
    }

    #[test]
    fn sibling_files_are_bundled() {
        let t = TempDir::new("bundle");
        t.write(
            "api.yaml",
            "openapi: 3.1.0\ncomponents:\n  schemas:\n    Local: {type: string}\n\
             paths:\n  /a:\n    post:\n      requestBody:\n        content:\n          \
             application/json:\n            schema: {$ref: 'schemas/pet.json#/Pet'}\n",
        );
        t.write(
            "schemas/pet.json",
            r##"{"Pet": {"type": "object", "properties": {"tag": {"$ref": "#/Tag"},
                "name": {"$ref": "../api.yaml#/components/schemas/Local"},
                "self": {"$ref": "#/Pet"}}},
                "Tag": {"type": "string", "example": {"$ref": "not a ref"}}}"##,
        );
        let doc = load_bundled(&t.path("api.yaml")).unwrap();
        let r = doc
            .pointer("/paths/~1a/post/requestBody/content/application~1json/schema/$ref")
            .unwrap();
        assert_eq!(r, "#/x-vigil-external/0");
        let pet = &doc[EXTERNAL_KEY][0];
        assert_eq!(pet["properties"]["tag"]["$ref"], "#/x-vigil-external/1");
        assert_eq!(
            pet["properties"]["name"]["$ref"],
            "#/components/schemas/Local"
        );
        assert_eq!(pet["properties"]["self"]["$ref"], "#/x-vigil-external/0");
        assert_eq!(
            doc[EXTERNAL_KEY][1]["example"],
            json!({"$ref": "not a ref"})
        );
    }

    /// Runs `f` on a thread and fails the test if it has not returned within 10 s, rather than
    /// hang the suite as a blocking open of a FIFO would.
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("returned without waiting")
    }

    fn mkfifo(path: &Path) {
        let made = std::process::Command::new("mkfifo").arg(path).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
    }

    #[test]
    fn only_regular_files_are_read() {
        let t = TempDir::new("special");
        let fifo = t.path("pipe.yaml");
        mkfifo(&fifo);
        let f = fifo.clone();
        let e = within_seconds(move || load_bundled(&f).unwrap_err());
        assert!(
            matches!(e, PolicyError::NotAFile { kind: "FIFO", .. }),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{} is a FIFO, not a regular file; point the policy at the description file",
                fifo.display()
            )
        );
        // Siblings named by a `$ref` are held to the same rule.
        t.write("api.yaml", "openapi: 3.0.3\nx: {$ref: 'pipe.yaml#/A'}\n");
        let api = t.path("api.yaml");
        let e = within_seconds(move || load_bundled(&api).unwrap_err());
        assert!(
            matches!(&e, PolicyError::NotAFile { path, .. } if path.ends_with("pipe.yaml")),
            "{e}"
        );
        // `/dev/zero` claims no size and never ends: it is not read at all.
        let e = crate::Policy::load(Path::new("/dev/zero"), &Default::default()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/dev/zero is a character device, not a regular file"),
            "{e}"
        );
        let e = load_bundled(&t.path("")).unwrap_err();
        assert!(
            matches!(
                e,
                PolicyError::NotAFile {
                    kind: "directory",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn files_over_the_limit_are_refused_before_reading() {
        let t = TempDir::new("large");
        let big = t.path("big.json");
        // Sparse: the size is set, nothing is written.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_DOCUMENT_BYTES + 1)
            .unwrap();
        let e = read_document(&big).unwrap_err();
        assert!(
            matches!(e, PolicyError::TooLarge { size, limit, .. }
                if size == MAX_DOCUMENT_BYTES + 1 && limit == MAX_DOCUMENT_BYTES),
            "{e}"
        );
        assert!(e.to_string().contains("split it into files"), "{e}");
        t.write("api.json", r#"{"a": {"$ref": "big.json#/A"}}"#);
        let e = load_bundled(&t.path("api.json")).unwrap_err();
        assert!(
            matches!(&e, PolicyError::TooLarge { path, .. } if path.ends_with("big.json")),
            "{e}"
        );
        std::fs::write(t.path("latin1.yaml"), b"a: caf\xe9\n").unwrap();
        let e = read_document(&t.path("latin1.yaml")).unwrap_err();
        assert!(e.to_string().contains("as UTF-8 text"), "{e}");
    }

    /// 200 KB nested 100,000 (JSON) or 50,000 (YAML) levels deep: refused by the scan before a
    /// parser sees them (the YAML scanner alone would take about a minute on the flow maps).
    #[test]
    fn deeply_nested_documents_are_refused_before_parsing() {
        let t = TempDir::new("deep");
        let n = 100_000;
        let cases = [
            (
                "deep.json",
                format!("{{\"a\": {}{}}}", "[".repeat(n), "]".repeat(n)),
                1,
            ),
            (
                "maps.yaml",
                format!(
                    "openapi: 3.0.3\nx: {}1{}\n",
                    "{a: ".repeat(n / 2),
                    "}".repeat(n / 2)
                ),
                2,
            ),
            (
                "seqs.yaml",
                format!("openapi: 3.0.3\nx: {}{}\n", "[".repeat(n), "]".repeat(n)),
                2,
            ),
            (
                "block.yaml",
                format!("openapi: 3.0.3\nx:\n{}x\n", "- ".repeat(n)),
                3,
            ),
        ];
        for (name, text, at) in cases {
            t.write(name, &text);
            let e = crate::Policy::load(&t.path(name), &Default::default()).unwrap_err();
            assert!(
                matches!(e, PolicyError::TooDeep { line, limit: 128, .. } if line == at),
                "{name}: {e}"
            );
            assert!(
                e.to_string()
                    .contains(&format!("nests more than 128 levels deep at line {at}")),
                "{e}"
            );
            let e = crate::Policy::from_text(&text, &Default::default()).unwrap_err();
            assert!(matches!(e, PolicyError::TooDeep { .. }), "{name}: {e}");
        }
    }

    #[test]
    fn escaping_and_remote_refs_are_refused() {
        let t = TempDir::new("escape");
        t.write("outside.json", "{}");
        t.write("api/api.json", r#"{"a": {"$ref": "../outside.json"}}"#);
        let e = load_bundled(&t.path("api/api.json")).unwrap_err();
        assert!(
            e.to_string().contains("escapes the document's directory"),
            "{e}"
        );
        assert!(e.to_string().contains("at /a/$ref"), "{e}");
        t.write(
            "api/remote.json",
            r#"{"a": {"$ref": "https://x.test/s.json#/A"}}"#,
        );
        let e = load_bundled(&t.path("api/remote.json")).unwrap_err();
        assert!(
            e.to_string().contains("remote references are refused"),
            "{e}"
        );
        t.write("api/missing.json", r#"{"a": {"$ref": "nope.json#/A"}}"#);
        assert!(load_bundled(&t.path("api/missing.json")).is_err());
        t.write("api/b.json", r#"{"B": 1}"#);
        t.write("api/bad-ptr.json", r#"{"a": {"$ref": "b.json#/C"}}"#);
        let e = load_bundled(&t.path("api/bad-ptr.json")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
