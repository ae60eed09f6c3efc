//! Publish preview: an org bundle pasted as text (`--- path` before each file) or uploaded (a
//! zip or a directory: `upload.rs`), validated and compiled with the active project layers
//! without activating anything: every problem as file:line:col, the bundle's own decision cases
//! (`policy test`), and what would change against the active revision; then activate.

use std::collections::BTreeSet;
use std::path::{Component, Path};
use std::sync::Arc;

use axum::extract::{Form, Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use strata_policy::testcase::{CaseResult, TestFile, TestFileError, run_file, test_files};
use strata_policy::{Bundle, FileTree, Problems, ProjectTrees, Snapshot};
use strata_proto::v1::{self, StoredOrg};
use strata_resolver::state::Active;

use crate::Console;
use crate::auth::{Admin, forbidden};
use crate::upload::{self, UploadError};
use crate::{diff, layout};

/// The cases of one test file, or why it could not run
type FileResults = Result<Vec<CaseResult>, TestFileError>;

/// The line that starts each file of a pasted bundle
const FILE_MARK: &str = "--- ";

/// A pasted bundle: `--- path` lines, each followed by the file's content
pub fn parse(text: &str) -> Result<Vec<v1::File>, String> {
    let mut files: Vec<v1::File> = Vec::new();
    for line in text.replace("\r\n", "\n").split_inclusive('\n') {
        if let Some(path) = line.strip_prefix(FILE_MARK) {
            let path = path.trim().to_string();
            if !safe(&path) {
                return Err(format!(
                    "`{path}`: a path inside the bundle (or `../` for a sibling layer)"
                ));
            }
            files.push(v1::File {
                path,
                content: Vec::new(),
            });
        } else if let Some(f) = files.last_mut() {
            f.content.extend_from_slice(line.as_bytes());
        } else if !line.trim().is_empty() {
            return Err(format!("start with a `{FILE_MARK}path` line"));
        }
    }
    if files.is_empty() {
        return Err("the bundle is empty".to_string());
    }
    Ok(files)
}

/// Relative, no `.` and `..` only as the first component (a layer next to the bundle)
fn safe(path: &str) -> bool {
    let comps: Vec<Component> = Path::new(path).components().collect();
    !comps.is_empty()
        && comps.iter().enumerate().all(|(i, c)| match c {
            Component::Normal(_) => true,
            Component::ParentDir => i == 0,
            _ => false,
        })
}

/// The active org bundle as text, to start from
fn as_text(org: &StoredOrg) -> String {
    let mut out = String::new();
    for f in &org.files {
        out.push_str(FILE_MARK);
        out.push_str(&f.path);
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&f.content));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn form(admin: &Admin, text: &str, message: &str) -> Markup {
    html! {
        form method="post" action="/publish/preview" #publish-form {
            input type="hidden" name="csrf" value=(admin.session.csrf);
            label { "Message " input name="message" value=(message); }
            label { "The org bundle: each file after a " code { "--- path" } " line (" code { "--- ../project/.factory/settings.json" } " for a layer the bundle's tests name)"
                textarea name="bundle" rows="24" spellcheck="false" #bundle { (text) } }
            button type="submit" #preview { "Preview" }
        }
    }
}

/// The upload form: a zip file or a directory, as multipart (with the session's CSRF token)
fn upload_form(admin: &Admin, message: &str) -> Markup {
    html! {
        form method="post" action="/publish/upload" enctype="multipart/form-data" #upload-form {
            input type="hidden" name="csrf" value=(admin.session.csrf);
            label { "Message " input name="message" value=(message); }
            label { "A zip file " input type="file" name="zip" accept=".zip,application/zip" #upload-zip; }
            label { "or a directory " input type="file" name="dir" webkitdirectory multiple #upload-dir; }
            p.muted { "Its " code { "org/" } " directory is the org bundle (else its top directory is); the layers beside it ("
                code { "project/" } ", " code { "user/" } ") are what the bundle's tests name as " code { "../project" } ", " code { "../user" } ". At most "
                (upload::MAX_FILES) " files, " (upload::MAX_UNPACKED_BYTES / (1024 * 1024)) " MiB unpacked." }
            button type="submit" #upload { "Preview the upload" }
        }
    }
}

pub async fn page(State(console): State<Arc<Console>>, admin: Admin) -> Response {
    let text = console
        .resolver
        .active()
        .map(|a| as_text(&a.org))
        .unwrap_or_default();
    let body = html! {
        h1 { "Publish an org bundle" }
        h2 { "Upload" }
        (upload_form(&admin, ""))
        h2 { "Or paste" }
        p.muted #start-from-active { "Starts from the active bundle: edit it, preview, then activate." }
        (form(&admin, &text, ""))
    };
    layout::page(&admin.session, "Publish", body).into_response()
}

/// The active project layers, as the resolver compiles them with a new org bundle
fn project_trees(
    projects: &strata_resolver::state::Projects,
) -> Result<Vec<ProjectTrees>, Problems> {
    let mut out = Vec::new();
    for (id, entry) in projects {
        let p = &entry.layer;
        let mut folders = Vec::new();
        for f in &p.folders {
            folders.push((
                f.path.clone(),
                strata_proto::file_tree(&format!("project:{id}/{}", f.path), &f.files)?,
            ));
        }
        out.push(ProjectTrees {
            id: id.clone(),
            project: strata_proto::file_tree(&format!("project:{id}"), &p.files)?,
            folders,
        });
    }
    Ok(out)
}

/// Validate and compile `org` with the active project layers
fn compile(org: &[v1::File], active: Option<&Active>) -> Result<(FileTree, Snapshot), Problems> {
    let tree = strata_proto::file_tree("org", org)?;
    let projects = active
        .map(|a| project_trees(&a.projects))
        .transpose()?
        .unwrap_or_default();
    let bundle = Bundle {
        org: tree.clone(),
        projects,
        users: Vec::new(),
    };
    // `${VAR}` is checked against this process's environment, as the resolver checks it
    let env = |k: &str| std::env::var(k).ok();
    let snap = strata_policy::compile(&bundle, &env)?;
    Ok((tree, snap))
}

fn write(dir: &Path, files: &[v1::File]) -> std::io::Result<()> {
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &f.content)?;
    }
    Ok(())
}

/// The project layers a test file names that were not pasted: the active revision's
fn fill_projects(org_dir: &Path, test: &Path, active: Option<&Active>) -> std::io::Result<()> {
    let (Some(active), Ok(text)) = (active, std::fs::read_to_string(test)) else {
        return Ok(());
    };
    let Ok(spec) = serde_json::from_str::<TestFile>(&text) else {
        return Ok(());
    };
    for (id, p) in &spec.projects {
        let Some(layer) = active.projects.get(id).map(|e| &e.layer) else {
            continue;
        };
        let dir = org_dir.join(&p.path);
        if !dir.exists() && safe(&p.path) {
            write(&dir, &layer.files)?;
        }
        for (folder, path) in &p.folders {
            let dir = org_dir.join(path);
            if let Some(f) = layer
                .folders
                .iter()
                .find(|f| f.path == *folder)
                .filter(|_| !dir.exists() && safe(path))
            {
                write(&dir, &f.files)?;
            }
        }
    }
    Ok(())
}

/// The bundle's decision cases, as `policy test` runs them, in a scratch directory
fn run_tests(
    files: &[v1::File],
    org: &FileTree,
    active: Option<&Active>,
) -> Result<(Vec<FileResults>, String), String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let org_dir = scratch.path().join("org");
    std::fs::create_dir_all(&org_dir).map_err(|e| e.to_string())?;
    write(&org_dir, files).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for test in test_files(&org_dir) {
        fill_projects(&org_dir, &test, active).map_err(|e| e.to_string())?;
        out.push(run_file(&org_dir, org, &test));
    }
    // file names relative to the bundle, not to the scratch directory
    Ok((out, format!("{}/", org_dir.display())))
}

fn problems_list(p: &Problems, scratch: &str) -> Markup {
    html! {
        ul #problems { @for x in &p.problems {
            li class=(if x.is_error() { "problem" } else { "muted" }) { code { (x.file.replace(scratch, "")) ":" (x.line) ":" (x.col) } " " (x.code) ": " (x.message) }
        } }
    }
}

fn tests_table(results: &[FileResults], scratch: &str) -> Markup {
    let shown = |s: &str| s.replace(scratch, "");
    html! {
        table #test-cases {
            thead { tr { th { "Case" } th { "Result" } } }
            tbody { @for r in results {
                @match r {
                    Ok(cases) => { @for c in cases {
                        tr { td { (shown(&c.file)) " :: " (c.name) } td { @match &c.failure { None => span.allow { "ok" }, Some(why) => span.deny { "FAIL " (why) } } } }
                    } }
                    Err(e) => tr { td { (shown(&e.to_string())) } td { span.deny { "ERROR" } @if let TestFileError::Layers { problems, .. } = e { (problems_list(problems, scratch)) } } },
                }
            } }
        }
    }
}

#[derive(Deserialize)]
pub struct PublishForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    bundle: String,
    #[serde(default)]
    message: String,
    /// an upload kept since its preview (`upload::Staged`), instead of `bundle`
    #[serde(default)]
    staged: String,
}

/// Where a previewed bundle came from, and so what the activate form sends back
enum Source {
    Pasted(String),
    /// the id of the upload kept for this session
    Uploaded(String),
}

impl Source {
    /// The form to change and preview it again
    fn form(&self, admin: &Admin, message: &str) -> Markup {
        match self {
            Source::Pasted(text) => form(admin, text, message),
            Source::Uploaded(_) => upload_form(admin, message),
        }
    }

    /// What the activate form carries
    fn carried(&self) -> Markup {
        match self {
            Source::Pasted(text) => html! { textarea name="bundle" hidden { (text) } },
            Source::Uploaded(id) => html! { input type="hidden" name="staged" value=(id); },
        }
    }
}

fn preview_body(
    console: &Console,
    admin: &Admin,
    message: &str,
    source: &Source,
    files: &[v1::File],
) -> Markup {
    let active = console.resolver.active();
    let org: Vec<v1::File> = files
        .iter()
        .filter(|x| !x.path.starts_with("../"))
        .cloned()
        .collect();
    match compile(&org, active.as_deref()) {
        Err(p) => {
            html! { h2.problem #invalid { "Invalid: " (p.problems.iter().filter(|x| x.is_error()).count()) " problem(s)" } (problems_list(&p, "")) (source.form(admin, message)) }
        }
        Ok((tree, snap)) => {
            let tests = run_tests(files, &tree, active.as_deref());
            let changes = match &active {
                Some(a) => {
                    let projects: BTreeSet<String> = a.projects.keys().cloned().collect();
                    let mut groups = diff::groups_named(&diff::layer_files(&a.org, &a.projects));
                    groups.extend(diff::groups_named(&diff::layer_files(
                        &StoredOrg { files: org.clone() },
                        &strata_resolver::state::no_projects(),
                    )));
                    let c = diff::effective_changes(
                        &a.snapshot,
                        &snap,
                        console.options.gateway_url.as_deref(),
                        &projects,
                        &groups,
                    );
                    let old = diff::layer_files(&a.org, &strata_resolver::state::no_projects());
                    let new = diff::layer_files(
                        &StoredOrg { files: org.clone() },
                        &strata_resolver::state::no_projects(),
                    );
                    html! { h2 { "What decisions change" } (diff::effective_table(&c)) h2 { "Files" } (diff::files(&old, &new)) }
                }
                None => html! { p.muted { "Nothing is active yet." } },
            };
            html! {
                h2.allow #valid { "Valid" } @if !snap.diagnostics().is_empty() { (problems_list(&Problems { problems: snap.diagnostics().to_vec() }, "")) }
                h2 { "The bundle's decision cases" }
                @match &tests { Ok((t, _)) if t.is_empty() => p.muted { "The bundle has no tests/*.json." }, Ok((t, scratch)) => (tests_table(t, scratch)), Err(e) => p.problem { (e) } }
                (changes)
                form method="post" action="/publish/activate" #activate-form {
                    input type="hidden" name="csrf" value=(admin.session.csrf);
                    input type="hidden" name="message" value=(message);
                    (source.carried())
                    button.danger type="submit" #activate { "Activate" }
                }
            }
        }
    }
}

/// The preview, rendered on a blocking thread (it compiles and runs the bundle's cases)
async fn previewed(
    console: &Arc<Console>,
    admin: &Admin,
    message: String,
    source: Source,
    files: Vec<v1::File>,
) -> Markup {
    let (c, session) = (console.clone(), admin.session.clone());
    let shown = tokio::task::spawn_blocking(move || {
        preview_body(&c, &Admin { session }, &message, &source, &files)
    })
    .await;
    shown.unwrap_or_else(|e| html! { p.problem { (e.to_string()) } })
}

fn preview_page(admin: &Admin, status: StatusCode, body: Markup) -> Response {
    let page = html! { h1 { "Publish preview" } (body) };
    (
        status,
        layout::page(&admin.session, "Publish preview", page),
    )
        .into_response()
}

pub async fn preview(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Form(f): Form<PublishForm>,
) -> Response {
    if !admin.csrf_ok(&f.csrf) {
        return forbidden("invalid CSRF token");
    }
    let body = match parse(&f.bundle) {
        Err(e) => html! { p.problem #parse-error { (e) } (form(&admin, &f.bundle, &f.message)) },
        Ok(files) => previewed(&console, &admin, f.message, Source::Pasted(f.bundle), files).await,
    };
    preview_page(&admin, StatusCode::OK, body)
}

/// A refused upload: why (naming the file), and the upload form again
fn upload_refused(admin: &Admin, e: &UploadError) -> Response {
    let status = match e {
        UploadError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = html! { p.problem #upload-error data-code=(e.code()) { (e.to_string()) } (upload_form(admin, "")) };
    preview_page(admin, status, body)
}

/// A zip file or a directory, previewed; kept for this session until it is activated
pub async fn upload(
    State(console): State<Arc<Console>>,
    admin: Admin,
    multipart: Multipart,
) -> Response {
    let form = match upload::read(multipart).await {
        Ok(f) => f,
        Err(e) => return upload_refused(&admin, &e),
    };
    // nothing uploaded is looked into before the form is known to be the admin's
    if !admin.csrf_ok(&form.csrf) {
        return forbidden("invalid CSRF token");
    }
    let message = form.message.clone();
    let files = tokio::task::spawn_blocking(move || upload::bundle(form, upload::LIMITS)).await;
    let files = match files {
        Ok(Ok(files)) => files,
        Ok(Err(e)) => return upload_refused(&admin, &e),
        Err(e) => return upload_refused(&admin, &UploadError::Multipart(e.to_string())),
    };
    let Some(id) = console.staged.put(&admin.session.csrf, files.clone()) else {
        return upload_refused(&admin, &UploadError::Multipart("no room".to_string()));
    };
    let body = previewed(&console, &admin, message, Source::Uploaded(id), files).await;
    preview_page(&admin, StatusCode::OK, body)
}

/// The org bundle's files the activate form names: pasted text, or an upload kept since its
/// preview
fn activated_files(
    console: &Console,
    admin: &Admin,
    f: &PublishForm,
) -> Result<Vec<v1::File>, String> {
    let files = if f.staged.is_empty() {
        parse(&f.bundle)?
    } else {
        console
            .staged
            .take(&admin.session.csrf, &f.staged)
            .ok_or("the upload is no longer kept: upload it again")?
    };
    Ok(files
        .into_iter()
        .filter(|x| !x.path.starts_with("../"))
        .collect())
}

pub async fn activate(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Form(f): Form<PublishForm>,
) -> Response {
    if !admin.csrf_ok(&f.csrf) {
        return forbidden("invalid CSRF token");
    }
    let files = match activated_files(&console, &admin, &f) {
        Ok(files) => files,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                layout::page(
                    &admin.session,
                    "Publish",
                    html! { p.problem #publish-error { (e) } },
                ),
            )
                .into_response();
        }
    };
    let message = if f.message.trim().is_empty() {
        "published in the console".to_string()
    } else {
        f.message.clone()
    };
    match console.resolver.publish_org(files, message.clone()).await {
        Ok((rev, _, _)) => {
            console
                .record(&admin.session.who, &format!("published {rev}"), &message)
                .await;
            Redirect::to("/revisions").into_response()
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            layout::page(
                &admin.session,
                "Publish",
                html! { p.problem #publish-error { (e.to_string()) } },
            ),
        )
            .into_response(),
    }
}
