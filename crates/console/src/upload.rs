//! A bundle uploaded as a zip file or as a directory (`<input type=file webkitdirectory>`),
//! read from a multipart form into the files the paste form gives: the org bundle's paths
//! relative to it, and its sibling layers (the project and user layers its tests name) as
//! `../path`. Hostile input is refused with the file it is about: the request's size, the number
//! of files, what a zip unpacks to (a zip bomb), absolute paths, `..`, symbolic links.
//!
//! Where the org bundle is: the upload's `org/` directory if it has one (an upload of the
//! example's `acme/`, or of `org/` itself), else its root; a single top directory around
//! everything (a directory upload always has one: the directory's own name) is looked into.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::Multipart;
use strata_proto::v1;

/// The largest upload read, in bytes (the whole request)
pub const MAX_REQUEST_BYTES: usize = strata_policy::layer::MAX_TREE_BYTES + 1024 * 1024;
/// The most files an upload may hold (a zip's entries, or a directory's files)
pub const MAX_FILES: usize = strata_policy::layer::MAX_FILES;
/// The most bytes an upload's files may hold, unpacked
pub const MAX_UNPACKED_BYTES: usize = strata_policy::layer::MAX_TREE_BYTES;
/// How long a previewed upload waits for the admin to activate it
pub const STAGED_TTL: Duration = Duration::from_secs(30 * 60);
/// Previewed uploads kept at once (the oldest goes first)
const MAX_STAGED: usize = 8;

/// How much an upload may hold
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub files: usize,
    pub unpacked_bytes: usize,
}

pub const LIMITS: Limits = Limits {
    files: MAX_FILES,
    unpacked_bytes: MAX_UNPACKED_BYTES,
};

/// `n` bytes, in MiB when it is a whole number of them
fn size(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is larger than {}", size(MAX_REQUEST_BYTES))]
    TooLarge,
    #[error("cannot read the upload: {0}")]
    Multipart(String),
    #[error("choose a zip file or a directory")]
    Empty,
    #[error("upload a zip file or a directory, not both")]
    Both,
    #[error("the upload has more than {limit} files")]
    TooManyFiles { limit: usize },
    #[error("`{file}`: the upload unpacks to more than {}", size(*.limit))]
    Unpacked { file: String, limit: usize },
    #[error("`{file}`: {why}")]
    Refused { file: String, why: &'static str },
    #[error("`{file}`: not a zip archive: {error}")]
    NotZip { file: String, error: String },
    #[error("`{file}`: cannot unpack: {error}")]
    Unpack { file: String, error: String },
}

impl UploadError {
    /// A stable code, for tests and logs
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::TooLarge => "upload.too_large",
            UploadError::Multipart(_) => "upload.unreadable",
            UploadError::Empty => "upload.empty",
            UploadError::Both => "upload.both",
            UploadError::TooManyFiles { .. } => "upload.too_many_files",
            UploadError::Unpacked { .. } => "upload.unpacked_too_large",
            UploadError::Refused { .. } => "upload.refused_path",
            UploadError::NotZip { .. } => "upload.not_zip",
            UploadError::Unpack { .. } => "upload.unpack",
        }
    }
}

fn refused(file: &str, why: &'static str) -> UploadError {
    UploadError::Refused {
        file: file.to_string(),
        why,
    }
}

/// What the form sent: its text fields, and the uploaded files (not yet looked into)
#[derive(Default)]
pub struct Form {
    pub csrf: String,
    pub message: String,
    /// the zip file: its name and bytes
    pub zip: Option<(String, Vec<u8>)>,
    /// the directory's files: path (the browser's relative path) and bytes
    pub dir: Vec<(String, Vec<u8>)>,
}

fn multipart(e: axum::extract::multipart::MultipartError) -> UploadError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        UploadError::TooLarge
    } else {
        UploadError::Multipart(e.body_text())
    }
}

/// Read the form (within the route's body limit); nothing is unpacked yet
pub async fn read(mut m: Multipart) -> Result<Form, UploadError> {
    let mut form = Form::default();
    while let Some(field) = m.next_field().await.map_err(multipart)? {
        let name = field.name().unwrap_or_default().to_string();
        let file = field.file_name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(multipart)?;
        match name.as_str() {
            "csrf" => form.csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "message" => form.message = String::from_utf8_lossy(&bytes).into_owned(),
            // a file input left empty still sends a part, without a file name
            "zip" if !file.is_empty() => form.zip = Some((file, bytes.to_vec())),
            "dir" if !file.is_empty() => {
                if form.dir.len() == MAX_FILES {
                    return Err(UploadError::TooManyFiles { limit: MAX_FILES });
                }
                form.dir.push((file, bytes.to_vec()));
            }
            _ => {}
        }
    }
    Ok(form)
}

/// A path inside the upload, checked: relative, `/`-separated, no `..`; `.` and empty parts
/// dropped. `None` for files that are not part of a bundle (`__MACOSX/`, `.DS_Store`).
fn checked(name: &str) -> Result<Option<String>, UploadError> {
    if name.contains('\0') {
        return Err(refused(name, "a file name with a NUL byte"));
    }
    if name.contains('\\') {
        return Err(refused(name, "a path with `\\` (use `/`)"));
    }
    let drive = name.as_bytes().get(1) == Some(&b':');
    if name.starts_with('/') || drive {
        return Err(refused(name, "an absolute path"));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(refused(name, "a path with `..`")),
            p => parts.push(p),
        }
    }
    let junk = parts.first() == Some(&"__MACOSX") || parts.last() == Some(&".DS_Store");
    Ok((!parts.is_empty() && !junk).then(|| parts.join("/")))
}

/// The files of a zip archive, each name checked, symbolic links refused, and what it unpacks
/// to bounded: by the sizes the archive declares before anything is unpacked, and again by
/// the bytes actually read (a declared size can lie)
pub fn unzip(
    zip_name: &str,
    bytes: &[u8],
    limits: Limits,
) -> Result<Vec<(String, Vec<u8>)>, UploadError> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| UploadError::NotZip {
            file: zip_name.to_string(),
            error: e.to_string(),
        })?;
    if archive.len() > limits.files {
        return Err(UploadError::TooManyFiles {
            limit: limits.files,
        });
    }
    let max = limits.unpacked_bytes as u64;
    let too_large = |file: String| UploadError::Unpacked {
        file,
        limit: limits.unpacked_bytes,
    };
    let unpack = |file: &str, e: &dyn std::fmt::Display| UploadError::Unpack {
        file: file.to_string(),
        error: e.to_string(),
    };
    let mut out = Vec::new();
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let name = match archive.name_for_index(i) {
            Some(Ok(name)) => name.into_owned(),
            _ => format!("{zip_name}, entry {i}"),
        };
        let mut entry = archive.by_index(i).map_err(|e| unpack(&name, &e))?;
        if entry.is_symlink() {
            return Err(refused(&name, "a symbolic link"));
        }
        if entry.is_dir() {
            continue;
        }
        let Some(path) = checked(&name)? else {
            continue;
        };
        let room = max.saturating_sub(total);
        if entry.size() > room {
            return Err(too_large(name));
        }
        let mut content = Vec::new();
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut content)
            .map_err(|e| unpack(&name, &e))?;
        total += content.len() as u64;
        if total > max {
            return Err(too_large(name));
        }
        out.push((path, content));
    }
    Ok(out)
}

/// The upload's files as the bundle's (see the module docs), checked and bounded
pub fn bundle(form: Form, limits: Limits) -> Result<Vec<v1::File>, UploadError> {
    let raw = match (form.zip, form.dir.is_empty()) {
        (Some(_), false) => return Err(UploadError::Both),
        (Some((name, bytes)), true) => unzip(&name, &bytes, limits)?,
        (None, false) => {
            let total: usize = form.dir.iter().map(|(_, b)| b.len()).sum();
            if total > limits.unpacked_bytes {
                let last = form.dir.last().map(|f| f.0.clone()).unwrap_or_default();
                return Err(UploadError::Unpacked {
                    file: last,
                    limit: limits.unpacked_bytes,
                });
            }
            let mut out = Vec::new();
            for (name, bytes) in form.dir {
                if let Some(path) = checked(&name)? {
                    out.push((path, bytes));
                }
            }
            out
        }
        (None, true) => return Err(UploadError::Empty),
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (path, bytes) in raw {
        if files.insert(path.clone(), bytes).is_some() {
            return Err(refused(&path, "twice in the upload"));
        }
    }
    if files.is_empty() {
        return Err(UploadError::Empty);
    }
    let root = org_root(files.keys().map(String::as_str));
    let mut out = Vec::new();
    for (path, content) in files {
        let path = match path.strip_prefix(root.as_str()) {
            Some(inside) if !root.is_empty() => inside.to_string(),
            _ if root.is_empty() => path,
            // a sibling layer: named from the org bundle, as a test file names it
            _ => {
                let outer = root.trim_end_matches('/').rsplit_once('/').map(|x| x.0);
                let rel = match outer {
                    Some(o) => path.strip_prefix(&format!("{o}/")).unwrap_or(&path),
                    None => &path,
                };
                format!("../{rel}")
            }
        };
        out.push(v1::File { path, content });
    }
    Ok(out)
}

/// The org bundle's directory in the upload (`""`, or a prefix ending in `/`)
fn org_root<'a>(paths: impl Iterator<Item = &'a str> + Clone) -> String {
    let mut root = String::new();
    loop {
        let inside = paths.clone().filter_map(|p| p.strip_prefix(root.as_str()));
        if inside.clone().any(|p| p.starts_with("org/")) {
            return format!("{root}org/");
        }
        let mut tops = inside.map(|p| p.split_once('/').map(|(top, _)| top));
        let Some(Some(first)) = tops.next() else {
            return root;
        };
        if !tops.all(|t| t == Some(first)) {
            return root;
        }
        root = format!("{root}{first}/");
    }
}

/// Uploads previewed and waiting for the admin to activate them, by a random id, each for the
/// session that uploaded it: activating sends back the id, not the files, so what is activated
/// is what was previewed
#[derive(Default)]
pub struct Staged(Mutex<HashMap<String, Stage>>);

struct Stage {
    session: String,
    at: Instant,
    files: Vec<v1::File>,
}

impl Staged {
    /// Keep `files` for `session`; the id to activate them with
    pub fn put(&self, session: &str, files: Vec<v1::File>) -> Option<String> {
        let id = crate::session::random_hex(16);
        if id.is_empty() {
            return None;
        }
        let mut map = self.0.lock().ok()?;
        map.retain(|_, s| s.at.elapsed() < STAGED_TTL);
        if map.len() >= MAX_STAGED
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.at).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let stage = Stage {
            session: session.to_string(),
            at: Instant::now(),
            files,
        };
        map.insert(id.clone(), stage);
        Some(id)
    }

    /// The files staged as `id` by `session` (taken: an upload is activated once)
    pub fn take(&self, session: &str, id: &str) -> Option<Vec<v1::File>> {
        let mut map = self.0.lock().ok()?;
        let fresh = map
            .get(id)
            .is_some_and(|s| s.session == session && s.at.elapsed() < STAGED_TTL);
        fresh.then(|| map.remove(id)).flatten().map(|s| s.files)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::io::Write;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for (name, bytes) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn paths(files: &[v1::File]) -> Vec<&str> {
        files.iter().map(|f| f.path.as_str()).collect()
    }

    fn zipped(entries: &[(&str, &[u8])]) -> Result<Vec<v1::File>, UploadError> {
        zip_file("b.zip", zip_of(entries))
    }

    fn zip_file(name: &str, bytes: Vec<u8>) -> Result<Vec<v1::File>, UploadError> {
        let form = Form {
            zip: Some((name.into(), bytes)),
            ..Default::default()
        };
        bundle(form, LIMITS)
    }

    #[test]
    fn the_org_directory_is_the_bundle_and_its_siblings_are_named_from_it() {
        let acme = zipped(&[
            ("acme/org/settings.json", b"{}"),
            ("acme/org/tests/t.json", b"{}"),
            ("acme/project/.factory/settings.json", b"{}"),
            ("acme/user/settings.json", b"{}"),
        ])
        .unwrap();
        assert_eq!(
            paths(&acme),
            [
                "settings.json",
                "tests/t.json",
                "../project/.factory/settings.json",
                "../user/settings.json"
            ]
        );
        let org = zipped(&[("org/settings.json", b"{}"), ("org/policy.json", b"{}")]).unwrap();
        assert_eq!(paths(&org), ["policy.json", "settings.json"]);
        let flat = zipped(&[("settings.json", b"{}"), ("policies/a.cedar", b"")]).unwrap();
        assert_eq!(paths(&flat), ["policies/a.cedar", "settings.json"]);
        // a directory upload: every path starts with the chosen directory's name
        let form = Form {
            dir: vec![
                ("mine/settings.json".into(), b"{}".to_vec()),
                ("mine/.DS_Store".into(), b"x".to_vec()),
                ("mine/droids/r.md".into(), b"x".to_vec()),
            ],
            ..Default::default()
        };
        let dir = bundle(form, LIMITS).unwrap();
        assert_eq!(paths(&dir), ["droids/r.md", "settings.json"]);
    }

    #[test]
    fn hostile_archives_are_refused_naming_the_file() {
        for (name, why) in [
            ("/etc/passwd", "an absolute path"),
            ("org/../../x.json", "a path with `..`"),
            ("C:/x.json", "an absolute path"),
            ("org\\x.json", "a path with `\\` (use `/`)"),
        ] {
            let e = zipped(&[("org/settings.json", b"{}"), (name, b"{}")]).unwrap_err();
            assert_eq!(e.to_string(), format!("`{name}`: {why}"));
            assert_eq!(e.code(), "upload.refused_path");
        }
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink(
            "org/settings.json",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        let e = zip_file("l.zip", w.finish().unwrap().into_inner()).unwrap_err();
        assert_eq!(e.to_string(), "`org/settings.json`: a symbolic link");
        let e = zip_file("notes.txt", b"hello".to_vec()).unwrap_err();
        assert!(
            e.to_string().starts_with("`notes.txt`: not a zip archive"),
            "{e}"
        );
        let e = zipped(&[("a.json", b"1"), ("./a.json", b"2")]).unwrap_err();
        assert_eq!(e.to_string(), "`a.json`: twice in the upload");
    }

    /// A zip bomb: a few KiB that would unpack to more than the limit stops at the entry that
    /// crosses it, before it is unpacked; and so does an archive of too many entries
    #[test]
    fn what_a_zip_unpacks_to_is_bounded() {
        let limits = Limits {
            files: 10,
            unpacked_bytes: 4 * 1024 * 1024,
        };
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mib = vec![b'a'; 1024 * 1024];
        for i in 0..3 {
            w.start_file(format!("org/big{i}.json"), opts).unwrap();
            for _ in 0..2 {
                w.write_all(&mib).unwrap();
            }
        }
        let bytes = w.finish().unwrap().into_inner();
        assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
        let e = unzip("bomb.zip", &bytes, limits).unwrap_err();
        assert_eq!(e.code(), "upload.unpacked_too_large");
        assert_eq!(
            e.to_string(),
            "`org/big2.json`: the upload unpacks to more than 4 MiB"
        );
        let within = Limits {
            unpacked_bytes: 6 * 1024 * 1024,
            ..limits
        };
        assert_eq!(unzip("bomb.zip", &bytes, within).unwrap().len(), 3);

        let many: Vec<(String, Vec<u8>)> = (0..11)
            .map(|i| (format!("d/{i}.json"), Vec::new()))
            .collect();
        let entries: Vec<(&str, &[u8])> = many.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
        let e = unzip("many.zip", &zip_of(&entries), limits).unwrap_err();
        assert_eq!(e.to_string(), "the upload has more than 10 files");
    }

    #[test]
    fn a_staged_upload_is_activated_once_by_its_own_session() {
        let staged = Staged::default();
        let id = staged.put("s1", vec![v1::File::default()]).unwrap();
        assert!(staged.take("s2", &id).is_none(), "another session");
        assert_eq!(staged.take("s1", &id).unwrap().len(), 1);
        assert!(staged.take("s1", &id).is_none(), "once");
    }
}
