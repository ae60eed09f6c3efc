//! Publish preview by upload, over real HTTP: a zip of the example bundle (with the layers its
//! tests name, so every case runs), a directory upload, activation of exactly what was
//! previewed, and hostile uploads refused naming the file, with nothing activated

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reqwest::multipart::{Form, Part};

impl Session {
    async fn upload(&self, form: Form) -> reqwest::Response {
        self.http
            .post(format!("{}/publish/upload", self.url))
            .header("cookie", format!("strata_console={}", self.cookie))
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }
}

fn zip_form(csrf: &str, name: &str, bytes: Vec<u8>) -> Form {
    Form::new()
        .text("csrf", csrf.to_string())
        .text("message", "uploaded")
        .part("zip", Part::bytes(bytes).file_name(name.to_string()))
        // the directory input, left empty, as a browser sends it
        .part("dir", Part::bytes(Vec::new()).file_name(""))
}

/// The `<table id="test-cases">` of a preview
fn cases(page: &str) -> &str {
    let at = page.find("id=\"test-cases\"").expect("the cases");
    let cases = &page[at..];
    &cases[..cases.find("</table>").expect("end")]
}

#[tokio::test]
async fn a_zip_of_the_example_runs_every_case_and_activates_what_was_previewed() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let before = run.resolver.active().expect("active").revision.clone();
    assert!(s.page("/publish").await.contains("id=\"upload-form\""));

    // unchanged: valid, every case of every test file passes (the sibling layers came along)
    let res = s
        .upload(zip_form(&s.csrf, "acme.zip", acme_zip(|_, c| c)))
        .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.expect("body");
    assert!(page.contains("id=\"valid\""), "{page}");
    let table = cases(&page);
    for file in ["tests/models.json", "tests/mcp.json", "tests/byok.json"] {
        assert!(table.contains(&format!("{file} :: ")), "{file}: {table}");
    }
    let ok = table.matches(">ok<").count();
    assert!(ok > 20, "{ok} cases ok: {table}");
    assert!(
        !table.contains("FAIL") && !table.contains("ERROR"),
        "{table}"
    );
    assert!(page.contains("id=\"no-effective-changes\""), "{page}");

    // without the fast models: what decisions change, and the cases that expected them fail
    let res = s
        .upload(zip_form(&s.csrf, "acme.zip", acme_zip(drop_fast)))
        .await;
    let page = res.text().await.expect("body");
    assert!(
        page.contains("model gpt-5-mini"),
        "the effective diff: {page}"
    );
    assert!(cases(&page).contains("FAIL"));
    assert!(!cases(&page).contains("ERROR"));
    assert_eq!(
        run.resolver.active().expect("active").revision,
        before,
        "a preview activates nothing"
    );

    // the activate form names the upload kept for this session, not its files
    let staged = hidden(&page, "staged");
    assert_eq!(staged.len(), 32, "{staged}");
    assert!(!page.contains("name=\"bundle\""));
    let activate = [
        ("csrf", s.csrf.as_str()),
        ("staged", staged.as_str()),
        ("message", "uploaded"),
    ];
    let forged = [("csrf", "forged"), ("staged", staged.as_str())];
    assert_eq!(s.post("/publish/activate", &forged).await.status(), 403);
    let other = login(&run.url).await;
    let theirs = [("csrf", other.csrf.as_str()), ("staged", staged.as_str())];
    assert_eq!(
        other.post("/publish/activate", &theirs).await.status(),
        400,
        "another session cannot activate it"
    );
    assert_eq!(run.resolver.active().expect("active").revision, before);
    assert_eq!(s.post("/publish/activate", &activate).await.status(), 303);
    let active = run.resolver.active().expect("active");
    assert_ne!(active.revision, before);
    let settings = active
        .org
        .files
        .iter()
        .find(|f| f.path == "settings.json")
        .expect("settings.json at the bundle's root");
    let original = std::fs::read(repo().join("policies/examples/acme/org/settings.json")).unwrap();
    assert_eq!(
        settings.content,
        drop_fast("org/settings.json", original),
        "what was previewed"
    );
    assert!(
        active.org.files.iter().all(|f| !f.path.starts_with("..")),
        "the sibling layers are not part of the org bundle"
    );
    let res = s.post("/publish/activate", &activate).await;
    assert_eq!(res.status(), 400, "an upload is activated once");
    assert!(s.page("/changes").await.contains("uploaded"));
}

#[tokio::test]
async fn a_directory_upload_and_a_broken_zip_show_problems_as_file_line_col() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let before = run.resolver.active().expect("active").revision.clone();

    // the files of a directory, named as a browser names them: the chosen directory first
    let acme = repo().join("policies/examples/acme");
    let mut form = Form::new().text("csrf", s.csrf.clone());
    for (path, content) in walk(&acme) {
        let content = break_line_5(&path, content);
        let part = Part::bytes(content).file_name(format!("acme/{path}"));
        form = form.part("dir", part);
    }
    let page = s.upload(form).await.text().await.expect("body");
    assert!(page.contains("id=\"invalid\""), "{page}");
    assert!(
        page.contains("<code>org/settings.json:5:"),
        "file:line:col: {page}"
    );
    assert!(!page.contains("id=\"activate\""));
    assert!(page.contains("id=\"upload-form\""), "the upload form again");

    let form = Form::new().text("csrf", s.csrf.clone());
    let form = walk(&acme.join("org")).into_iter().fold(form, |f, (p, c)| {
        f.part("dir", Part::bytes(c).file_name(format!("org/{p}")))
    });
    let page = s.upload(form).await.text().await.expect("body");
    assert!(
        page.contains("id=\"valid\""),
        "the org directory alone: {page}"
    );
    assert_eq!(run.resolver.active().expect("active").revision, before);
}

/// A zip holding one entry named `name`
fn zip_with(name: &str, symlink: bool) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("org/settings.json", opts).unwrap();
    w.write_all(b"{}").unwrap();
    if symlink {
        w.add_symlink(name, "/etc/passwd", opts).unwrap();
    } else {
        w.start_file(name, opts).unwrap();
        w.write_all(b"{}").unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn hostile_uploads_are_refused_naming_the_file_and_activate_nothing() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let before = run.resolver.active().expect("active").revision.clone();
    let refused = |page: &str| {
        let at = page.find("id=\"upload-error\"").expect("an upload error");
        let p = &page[at..];
        p[p.find('>').expect(">") + 1..p.find("</p>").expect("</p>")].to_string()
    };
    for (zip, why) in [
        (
            zip_with("../../etc/cron.d/x", false),
            "`../../etc/cron.d/x`: a path with `..`",
        ),
        (
            zip_with("/etc/passwd", false),
            "`/etc/passwd`: an absolute path",
        ),
        (
            zip_with("org/policy.json", true),
            "`org/policy.json`: a symbolic link",
        ),
        (b"not a zip".to_vec(), "`x.zip`: not a zip archive"),
    ] {
        let res = s.upload(zip_form(&s.csrf, "x.zip", zip)).await;
        assert_eq!(res.status(), 400);
        let page = res.text().await.expect("body");
        let shown = refused(&page).replace("&#96;", "`");
        assert!(shown.starts_with(why), "{shown} / {why}");
    }

    // more than the request limit: refused before it is read whole
    let big = vec![b'x'; strata_console::MAX_UPLOAD_BYTES + 1];
    let res = s.upload(zip_form(&s.csrf, "big.zip", big)).await;
    assert_eq!(res.status(), 413);
    assert!(refused(&res.text().await.expect("body")).contains("larger than"));

    // no file at all, and both at once
    let empty = Form::new().text("csrf", s.csrf.clone());
    let res = s.upload(empty).await;
    assert_eq!(
        refused(&res.text().await.expect("body")),
        "choose a zip file or a directory"
    );
    let both = zip_form(&s.csrf, "a.zip", acme_zip(|_, c| c)).part(
        "dir",
        Part::bytes(b"{}".to_vec()).file_name("org/settings.json"),
    );
    let res = s.upload(both).await;
    assert!(refused(&res.text().await.expect("body")).contains("not both"));

    // a forged CSRF token: refused, and the archive is not even opened
    let res = s
        .upload(zip_form("forged", "acme.zip", acme_zip(drop_fast)))
        .await;
    assert_eq!(res.status(), 403);
    // and without a session: sent to sign in
    let res = s
        .http
        .post(format!("{}/publish/upload", s.url))
        .multipart(zip_form(&s.csrf, "acme.zip", acme_zip(drop_fast)))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 303);
    assert_eq!(run.resolver.active().expect("active").revision, before);
}
