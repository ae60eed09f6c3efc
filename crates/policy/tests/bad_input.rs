//! The bad-input set: every kind of broken layer, each with its exact error (code, file, line,
//! column, JSON pointer and message), and every problem of a bundle reported, not just the first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use strata_policy::{Bundle, FileTree, Problem, Problems, ProjectTrees, Severity, compile};

/// (code, file, line, col, pointer, message) of a problem
type Exact = (&'static str, String, u32, u32, String, String);

fn exact(p: &Problem) -> Exact {
    (
        p.code,
        p.file.clone(),
        p.line,
        p.col,
        p.pointer.clone(),
        p.message.clone(),
    )
}

fn want(
    code: &'static str,
    file: &str,
    line: u32,
    col: u32,
    pointer: &str,
    message: &str,
) -> Exact {
    (
        code,
        file.to_string(),
        line,
        col,
        pointer.to_string(),
        message.to_string(),
    )
}

fn tree(root: &str, files: &[(&str, &[u8])]) -> FileTree {
    FileTree::from_files(root, files.iter().map(|(p, b)| (p.to_string(), b.to_vec()))).unwrap()
}

fn org(files: &[(&str, &str)]) -> Bundle {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, s)| (*p, s.as_bytes())).collect();
    Bundle {
        org: tree("org", &files),
        ..Default::default()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// The errors of a bundle that must not compile
fn errors(bundle: &Bundle) -> Vec<Problem> {
    match compile(bundle, &no_env) {
        Ok(_) => panic!("the bundle compiled, but it is invalid"),
        Err(p) => {
            assert!(p.has_errors(), "{p:?}");
            p.errors().cloned().collect()
        }
    }
}

/// The one error of a bundle
fn only_error(bundle: &Bundle) -> Problem {
    let errs = errors(bundle);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    errs.into_iter().next().unwrap()
}

const PROVIDERS: &str = "expected one of `anthropic` (Messages API), `openai` (Responses API), `generic-chat-completion-api` (Chat Completions API)";

// ---- JSON syntax and types

#[test]
fn malformed_json_names_line_and_column() {
    let text = "{\n  \"modelPolicy\": {\n    \"blockedModelIds\": [\"gpt-4\",]\n  }\n}\n";
    let p = only_error(&org(&[("settings.json", text)]));
    assert_eq!(
        exact(&p),
        want(
            "json.syntax",
            "org/settings.json",
            3,
            33,
            "",
            "invalid JSON: trailing comma"
        )
    );
    assert_eq!(
        p.to_string(),
        "org/settings.json:3:33: invalid JSON: trailing comma"
    );
}

#[test]
fn malformed_json_unclosed_object() {
    let text = "{\n  \"mcpServers\": {\n    \"docs\": {\"url\": \"https://docs.acme.internal\"}\n";
    let p = only_error(&org(&[("mcp.json", text)]));
    assert_eq!(
        exact(&p),
        want(
            "json.syntax",
            "org/mcp.json",
            4,
            1,
            "",
            "invalid JSON: EOF while parsing an object"
        )
    );
}

#[test]
fn malformed_json_in_policy_json_and_user_config_json() {
    let bundle = Bundle {
        org: tree("org", &[("policy.json", b"{\"version\": 1 \"byok\": {}}")]),
        users: vec![(
            "alice".to_string(),
            tree(
                "users/alice",
                &[("config.json", b"{\n\"custom_models\": [\n}")],
            ),
        )],
        ..Default::default()
    };
    let errs: Vec<Exact> = errors(&bundle).iter().map(exact).collect();
    assert_eq!(
        errs,
        vec![
            want(
                "json.syntax",
                "org/policy.json",
                1,
                15,
                "",
                "invalid JSON: expected `,` or `}`"
            ),
            want(
                "json.syntax",
                "users/alice/config.json",
                3,
                1,
                "",
                "invalid JSON: expected value"
            ),
        ]
    );
}

#[test]
fn wrong_types_each_with_pointer_and_position() {
    let text = "{\n  \"modelPolicy\": {\n    \"blockedModelIds\": \"gpt-4\",\n    \"allowCustomModels\": \"yes\"\n  }\n}\n";
    let errs: Vec<Exact> = errors(&org(&[("settings.json", text)]))
        .iter()
        .map(exact)
        .collect();
    assert_eq!(
        errs,
        vec![
            want(
                "json.type",
                "org/settings.json",
                3,
                24,
                "/modelPolicy/blockedModelIds",
                "expected an array of strings, found a string"
            ),
            want(
                "json.type",
                "org/settings.json",
                4,
                26,
                "/modelPolicy/allowCustomModels",
                "expected a boolean, found a string"
            ),
        ]
    );
}

#[test]
fn three_wrong_fields_three_problems() {
    let text = r#"{
  "modelPolicy": {"allowedModelIds": {"gpt-5": true}, "blockedModelIds": ["ok"]},
  "mcpPolicy": {"enabled": "true"},
  "customModels": {"model": "x"}
}"#;
    let mut errs: Vec<Exact> = errors(&org(&[("settings.json", text)]))
        .iter()
        .map(exact)
        .collect();
    errs.sort_by_key(|e| (e.2, e.3));
    assert_eq!(
        errs,
        vec![
            want(
                "json.type",
                "org/settings.json",
                2,
                38,
                "/modelPolicy/allowedModelIds",
                "expected an array of strings, found an object"
            ),
            want(
                "json.type",
                "org/settings.json",
                3,
                28,
                "/mcpPolicy/enabled",
                "expected a boolean, found a string"
            ),
            want(
                "json.type",
                "org/settings.json",
                4,
                19,
                "/customModels",
                "expected an array, found an object"
            ),
        ]
    );
}

#[test]
fn a_wrong_entry_inside_a_list_points_at_the_entry() {
    let text = "{\"modelPolicy\": {\"blockedModelIds\": [\"ok\", 7, null]}}";
    let errs: Vec<Exact> = errors(&org(&[("settings.json", text)]))
        .iter()
        .map(exact)
        .collect();
    assert_eq!(
        errs,
        vec![
            want(
                "json.type",
                "org/settings.json",
                1,
                44,
                "/modelPolicy/blockedModelIds/1",
                "expected a string, found a number"
            ),
            want(
                "json.type",
                "org/settings.json",
                1,
                47,
                "/modelPolicy/blockedModelIds/2",
                "expected a string, found null"
            ),
        ]
    );
}

#[test]
fn settings_root_must_be_an_object() {
    let p = only_error(&org(&[("settings.json", "[1, 2]")]));
    assert_eq!(
        exact(&p),
        want(
            "json.type",
            "org/settings.json",
            1,
            1,
            "",
            "expected an object, found an array"
        )
    );
}

#[test]
fn unknown_fields_of_factory_files_are_ignored() {
    let text = r#"{"maxAutonomyLevel": "high", "hooks": {"x": 1}, "someFutureField": [1], "modelPolicy": {"allowAllFactoryModels": true, "isFastModelsAllowed": false}}"#;
    let mcp = r#"{"mcpServers": {"docs": {"url": "https://d.example.com", "enabledTools": ["a"], "timeoutMs": 5}}}"#;
    let snap = compile(&org(&[("settings.json", text), ("mcp.json", mcp)]), &no_env).unwrap();
    assert!(snap.diagnostics().is_empty(), "{:?}", snap.diagnostics());
}

/// A custom model's base URL is parsed as Droid's client parses it: userinfo, a query or a fragment
/// would make the URL Strata checks differ from where the traffic goes
#[test]
fn custom_model_base_url_is_parsed() {
    let text = r#"{"customModels": [{"model": "m", "provider": "openai", "baseUrl": "https://llm.acme.internal#@evil.example.com/v1"}, {"model": "n", "provider": "openai", "baseUrl": "https://u:p@llm.acme.internal/v1"}]}"#;
    let errs: Vec<(&str, String)> = errors(&org(&[("settings.json", text)]))
        .iter()
        .map(|p| (p.code, p.pointer.clone()))
        .collect();
    assert_eq!(
        errs,
        vec![
            ("url.fragment", "/customModels/0/baseUrl".to_string()),
            ("url.userinfo", "/customModels/1/baseUrl".to_string()),
        ]
    );
}

/// A typo inside a governed object would leave the policy it meant silently absent: an error in
/// the org layer, a warning below, each with the closest known key
#[test]
fn unknown_governed_keys_are_errors_in_the_org_and_warnings_below() {
    let org_text = "{\n  \"modelPolicy\": {\"blockedModelIDs\": [\"gpt-4o\"]},\n  \"mcpPolicy\": {\"enable\": true, \"allowlist\": []},\n  \"userModelPolicies\": {\"bob\": {\"allowedModelIdz\": [\"x\"]}}\n}";
    let errs: Vec<Exact> = errors(&org(&[("settings.json", org_text)]))
        .iter()
        .map(exact)
        .collect();
    assert_eq!(
        errs,
        vec![
            want(
                "json.unknown_field",
                "org/settings.json",
                2,
                38,
                "/modelPolicy/blockedModelIDs",
                "unknown field `blockedModelIDs`: did you mean `blockedModelIds`?"
            ),
            want(
                "json.unknown_field",
                "org/settings.json",
                3,
                27,
                "/mcpPolicy/enable",
                "unknown field `enable`: did you mean `enabled`?"
            ),
            want(
                "json.unknown_field",
                "org/settings.json",
                4,
                52,
                "/userModelPolicies/bob/allowedModelIdz",
                "unknown field `allowedModelIdz`: did you mean `allowedModelIds`?"
            ),
        ]
    );
    let project = r#"{"modelPolicy": {"blockedModelIDs": ["gpt-4o"]}}"#;
    let bundle = Bundle {
        org: tree("org", &[]),
        projects: vec![ProjectTrees {
            id: "web".to_string(),
            project: tree("projects/web", &[("settings.json", project.as_bytes())]),
            folders: Vec::new(),
        }],
        ..Default::default()
    };
    let snap = compile(&bundle, &no_env).unwrap();
    let warns: Vec<(&str, &str)> = snap
        .diagnostics()
        .iter()
        .map(|p| (p.code, p.message.as_str()))
        .collect();
    assert_eq!(
        warns,
        vec![(
            "json.unknown_field",
            "unknown field `blockedModelIDs`: did you mean `blockedModelIds`?"
        )]
    );
}

// ---- providers

#[test]
fn providers_droid_accepts_are_valid_with_a_warning() {
    let text = r#"{"customModels": [{"model": "g", "baseUrl": "https://x.example.com", "provider": "google"}]}"#;
    let snap = compile(&org(&[("settings.json", text)]), &no_env).unwrap();
    let got: Vec<&str> = snap.diagnostics().iter().map(|p| p.code).collect();
    assert_eq!(got, vec!["settings.provider_not_gateway"]);
    assert!(snap.diagnostics()[0].message.contains("`google`"));
}

#[test]
fn unknown_provider_in_settings_custom_models() {
    let text = r#"{
  "customModels": [
    {"model": "m", "baseUrl": "https://x.example.com", "provider": "azure", "apiKey": "k"}
  ]
}"#;
    let p = only_error(&org(&[("settings.json", text)]));
    let msg = format!("invalid provider `azure`: {PROVIDERS}");
    assert_eq!(
        exact(&p),
        want(
            "settings.invalid_provider",
            "org/settings.json",
            3,
            68,
            "/customModels/0/provider",
            &msg
        )
    );
}

#[test]
fn unknown_provider_in_legacy_config_json() {
    let text = "{\"custom_models\": [\n  {\"model\": \"m\", \"base_url\": \"https://x.example.com\", \"api_key\": \"sk-1\", \"provider\": \"gemini\"}\n]}";
    let bundle = Bundle {
        org: tree("org", &[]),
        users: vec![(
            "alice".to_string(),
            tree("users/alice", &[("config.json", text.as_bytes())]),
        )],
        ..Default::default()
    };
    let p = only_error(&bundle);
    let msg = format!("invalid provider `gemini`: {PROVIDERS}");
    assert_eq!(
        exact(&p),
        want(
            "settings.invalid_provider",
            "users/alice/config.json",
            2,
            86,
            "/custom_models/0/provider",
            &msg
        )
    );
}

#[test]
fn unknown_provider_in_policy_json_byok() {
    let text = "{\n  \"byok\": {\n    \"allowedProviders\": [\"anthropic\", \"google\"]\n  }\n}";
    let p = only_error(&org(&[("policy.json", text)]));
    let msg = format!("invalid provider `google`: {PROVIDERS}");
    assert_eq!(
        exact(&p),
        want(
            "policy.invalid_provider",
            "org/policy.json",
            3,
            39,
            "/byok/allowedProviders/1",
            &msg
        )
    );
}

#[test]
fn provider_is_required_in_custom_models() {
    let text = r#"{"customModels": [{"model": "m", "baseUrl": "https://x.example.com"}, {"provider": "openai"}]}"#;
    let errs: Vec<Exact> = errors(&org(&[("settings.json", text)]))
        .iter()
        .map(exact)
        .collect();
    assert_eq!(
        errs,
        vec![
            want(
                "settings.missing_field",
                "org/settings.json",
                1,
                19,
                "/customModels/0",
                "custom model `m` has no `provider`"
            ),
            want(
                "settings.missing_field",
                "org/settings.json",
                1,
                71,
                "/customModels/1",
                "custom model has no `model`"
            ),
        ]
    );
}

// ---- Cedar

#[test]
fn invalid_cedar_syntax_names_the_line() {
    let text = "permit (principal, action, resource);\n\nforbid (principal, action resource);\n";
    let p = only_error(&org(&[("policies/bad.cedar", text)]));
    assert_eq!(
        (p.code, p.file.as_str(), p.line, p.pointer.as_str()),
        ("cedar.syntax", "org/policies/bad.cedar", 3, "")
    );
    assert_eq!(p.col, 27, "{p}");
    assert!(p.message.starts_with("invalid Cedar: "), "{p}");
}

#[test]
fn cedar_unknown_entity_type_fails_schema_validation() {
    let text = "// a rule about a type the schema does not have\n@id(\"foo\")\nforbid (principal, action, resource in Foo::\"x\");\n";
    let p = only_error(&org(&[("policies/foo.cedar", text)]));
    assert_eq!(
        (p.code, p.file.as_str(), p.line, p.pointer.as_str()),
        ("cedar.schema", "org/policies/foo.cedar", 3, "")
    );
    assert!(
        p.message
            .starts_with("policy `org#policies/foo.cedar/foo` does not match the schema: "),
        "{p}"
    );
    assert!(p.message.contains("Foo"), "{p}");
}

#[test]
fn cedar_unknown_context_attribute_fails_schema_validation() {
    let text = "@id(\"ok\")\nforbid (principal, action in Action::\"use_model\", resource) when { context.keyMode == \"byok\" };\n\n@id(\"nope\")\nforbid (principal, action in Action::\"use_model\", resource)\nwhen { context.team == \"red\" };\n";
    // one error per rule, though the validator finds it once per action the rule applies to
    let errs = errors(&org(&[("policies/ctx.cedar", text)]));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    for (p, action) in errs.iter().zip(["invoke_model"]) {
        assert_eq!(
            (p.code, p.file.as_str(), p.line, p.col, p.pointer.as_str()),
            ("cedar.schema", "org/policies/ctx.cedar", 6, 8, "")
        );
        let head = "policy `org#policies/ctx.cedar/nope` does not match the schema: ";
        assert!(p.message.starts_with(head), "{p}");
        assert!(
            p.message.contains(&format!(
                "attribute `team` in context for Action::\"{action}\" not found"
            )),
            "{p}"
        );
    }
}

#[test]
fn cedar_schema_errors_in_project_and_folder_files_name_their_file() {
    let bad = "\n@id(\"t\")\nforbid (principal, action in Action::\"use_model\", resource)\nwhen { resource.vendor == \"x\" };\n";
    let bundle = Bundle {
        org: tree("org", &[]),
        projects: vec![ProjectTrees {
            id: "web".to_string(),
            project: tree("projects/web", &[("policies/p.cedar", bad.as_bytes())]),
            folders: vec![(
                "svc/a".to_string(),
                tree(
                    "projects/web/svc/a",
                    &[("policies/f.cedar", bad.as_bytes())],
                ),
            )],
        }],
        ..Default::default()
    };
    let errs = errors(&bundle);
    let mut got: Vec<(&str, &str, u32)> = errs
        .iter()
        .map(|p| (p.code, p.file.as_str(), p.line))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("cedar.schema", "projects/web/policies/p.cedar", 4),
            ("cedar.schema", "projects/web/svc/a/policies/f.cedar", 4)
        ]
    );
}

#[test]
fn project_and_folder_cedar_may_not_permit() {
    let permit = "@id(\"lift\")\npermit (principal, action, resource);\n";
    let bundle = Bundle {
        org: tree("org", &[]),
        projects: vec![ProjectTrees {
            id: "web".to_string(),
            project: tree("projects/web", &[("policies/p.cedar", permit.as_bytes())]),
            folders: vec![("svc".to_string(), tree("projects/web/svc", &[("policies/f.cedar", b"\nforbid (principal, action, resource);\npermit (principal, action, resource);")]))],
        }],
        ..Default::default()
    };
    let errs = errors(&bundle);
    let got: Vec<(&str, &str, u32, u32, &str)> = errs
        .iter()
        .map(|p| (p.code, p.file.as_str(), p.line, p.col, p.pointer.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "cedar.project_permit",
                "projects/web/policies/p.cedar",
                1,
                1,
                ""
            ),
            (
                "cedar.project_permit",
                "projects/web/svc/policies/f.cedar",
                3,
                1,
                ""
            ),
        ]
    );
    for (p, level, name) in [
        (&errs[0], "project", "p.cedar/lift"),
        (&errs[1], "folder", "f.cedar/1"),
    ] {
        assert!(p.message.starts_with("policy `"), "{p}");
        assert!(
            p.message.contains(name),
            "the message names the policy: {p}"
        );
        let rule = format!(
            "` is a `permit`: {level} layers may only add `forbid` rules, a permit could lift a restriction from above"
        );
        assert!(p.message.ends_with(&rule), "{p}");
    }
}

#[test]
fn org_cedar_may_permit() {
    let permit =
        "permit (principal in Group::\"leads\", action in Action::\"use_model\", resource);\n";
    compile(&org(&[("policies/p.cedar", permit)]), &no_env).unwrap();
}

#[test]
fn cedar_schema_error_not_hidden_by_another_projects_rule_id() {
    let good = "@id(\"guard\")\nforbid (principal, action in Action::\"use_model\", resource) when { resource.id like \"o3*\" };\n";
    let bad = "@id(\"guard\")\nforbid (principal, action in Action::\"use_model\", resource) when { context.team == \"red\" };\n";
    let bundle = Bundle {
        org: tree("org", &[]),
        projects: vec![
            ProjectTrees {
                id: "api".to_string(),
                project: tree("projects/api", &[("policies/local.cedar", good.as_bytes())]),
                folders: vec![],
            },
            ProjectTrees {
                id: "web".to_string(),
                project: tree("projects/web", &[("policies/local.cedar", bad.as_bytes())]),
                folders: vec![],
            },
        ],
        ..Default::default()
    };
    let errs = errors(&bundle);
    let got: Vec<(&str, &str, u32)> = errs
        .iter()
        .map(|p| (p.code, p.file.as_str(), p.line))
        .collect();
    // one error per rule
    assert_eq!(
        got,
        vec![("cedar.schema", "projects/web/policies/local.cedar", 2)]
    );
    assert!(
        errs.iter()
            .all(|p| p.message.contains("project:web#policies/local.cedar/guard")),
        "{errs:#?}"
    );
}

// ---- variables

#[test]
fn unset_variable_in_api_key_names_it() {
    let text = "{\n  \"customModels\": [\n    {\"model\": \"m\", \"baseUrl\": \"https://x.example.com\", \"provider\": \"openai\", \"apiKey\": \"${OPENAI_KEY}\"}\n  ]\n}";
    let p = only_error(&org(&[("settings.json", text)]));
    assert_eq!(
        exact(&p),
        want(
            "settings.unset_variable",
            "org/settings.json",
            3,
            88,
            "/customModels/0/apiKey",
            "environment variable `OPENAI_KEY` is not set"
        )
    );
    // set, it compiles, and the key is kept as a reference to the variable, never its value
    let env = |k: &str| (k == "OPENAI_KEY").then(|| "sk-secret-value-1234".to_string());
    let snap = compile(&org(&[("settings.json", text)]), &env).unwrap();
    let entry = format!("{:?}", snap.org.custom_models);
    assert!(
        entry.contains("OPENAI_KEY") && !entry.contains("sk-secret-value-1234"),
        "{entry}"
    );
}

#[test]
fn api_key_defaults_are_not_read_in_settings_json() {
    // `${VAR:-default}` is an mcp.json feature; in settings.json the whole text is the variable
    let text =
        r#"{"customModels": [{"model": "m", "provider": "openai", "apiKey": "${NOPE:-x}"}]}"#;
    assert!(compile(&org(&[("settings.json", text)]), &no_env).is_ok());
}

#[test]
fn unset_variable_in_mcp_url_names_it() {
    let text = "{\"mcpServers\": {\n  \"docs\": {\"type\": \"http\", \"url\": \"https://${MCP_HOST}/mcp\"},\n  \"ok\": {\"url\": \"https://${OK_HOST:-ok.example.com}/mcp\"}\n}}";
    let p = only_error(&org(&[("mcp.json", text)]));
    assert_eq!(
        exact(&p),
        want(
            "mcp.unset_variable",
            "org/mcp.json",
            2,
            35,
            "/mcpServers/docs/url",
            "environment variable `MCP_HOST` is not set and has no default"
        )
    );
}

#[test]
fn unset_variable_in_mcp_command_args_is_an_error_in_headers_a_warning() {
    let text = r#"{"mcpServers": {"gh": {"command": "npx", "args": ["-y", "${PKG}"], "env": {"TOKEN": "${GH_TOKEN}"}}}}"#;
    let problems = compile(&org(&[("mcp.json", text)]), &no_env).unwrap_err();
    let got: Vec<(Severity, &str, &str)> = problems
        .problems
        .iter()
        .map(|p| (p.severity, p.code, p.pointer.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Severity::Error,
                "mcp.unset_variable",
                "/mcpServers/gh/args/1"
            ),
            (
                Severity::Warning,
                "mcp.unset_variable",
                "/mcpServers/gh/env/TOKEN"
            ),
        ]
    );
}

// ---- policy.json

#[test]
fn unknown_field_in_policy_json() {
    let text = "{\n  \"version\": 1,\n  \"projectsMayAdModels\": false,\n  \"byok\": {\"allowedProvider\": [\"openai\"]}\n}";
    let errs: Vec<Exact> = errors(&org(&[("policy.json", text)]))
        .iter()
        .map(exact)
        .collect();
    assert_eq!(
        errs,
        vec![
            want(
                "json.unknown_field",
                "org/policy.json",
                3,
                26,
                "/projectsMayAdModels",
                "unknown field `projectsMayAdModels`: did you mean `projectsMayAddModels`?"
            ),
            want(
                "json.unknown_field",
                "org/policy.json",
                4,
                31,
                "/byok/allowedProvider",
                "unknown field `allowedProvider`: did you mean `allowedProviders`?"
            ),
        ]
    );
}

#[test]
fn policy_json_wrong_version_and_types() {
    let text = r#"{"version": 2, "projectsMayAddModels": "no", "modelCategories": {"bad name": ["x"], "ok": "gpt-5"}}"#;
    let mut errs: Vec<(&str, String)> = errors(&org(&[("policy.json", text)]))
        .iter()
        .map(|p| (p.code, p.pointer.clone()))
        .collect();
    errs.sort();
    assert_eq!(
        errs,
        vec![
            ("json.type", "/modelCategories/ok".to_string()),
            ("json.type", "/projectsMayAddModels".to_string()),
            (
                "policy.category_name",
                "/modelCategories/bad name".to_string()
            ),
            ("policy.version", "/version".to_string()),
        ]
    );
}

// ---- globs

#[test]
fn invalid_glob_in_a_model_list() {
    let text = "{\n  \"modelPolicy\": {\n    \"blockedModelIds\": [\"gpt-4\", \"gpt-[4\"]\n  }\n}";
    let p = only_error(&org(&[("settings.json", text)]));
    assert_eq!(
        (p.code, p.file.as_str(), p.line, p.col, p.pointer.as_str()),
        (
            "glob.invalid",
            "org/settings.json",
            3,
            34,
            "/modelPolicy/blockedModelIds/1"
        )
    );
    assert!(p.message.starts_with("invalid pattern `gpt-[4`: "), "{p}");
    assert!(p.message.contains("unclosed character class"), "{p}");
}

#[test]
fn invalid_url_patterns_name_the_entry() {
    // URL patterns are parsed into components: userinfo, a query or a fragment, a wildcard
    // anywhere but a whole host label, port or path segment, or no host is an error at the entry
    let text = r#"{"gateway": {"requiredBaseUrls": ["https://gw*.acme.internal/", "https://user@gw.acme.internal", "https://gw.acme.internal/v1?x=1", "https://gw.acme.internal/#.acme.internal", "https:///v1", "ftp://gw.acme.internal/"]}, "byok": {"allowedBaseUrls": ["http://127.0.0.1:8787/**"]}}"#;
    let errs: Vec<(&str, String)> = errors(&org(&[("policy.json", text)]))
        .iter()
        .map(|p| (p.code, p.pointer.clone()))
        .collect();
    let at = |i: usize| format!("/gateway/requiredBaseUrls/{i}");
    assert_eq!(
        errs,
        vec![
            ("url.pattern", at(0)),
            ("url.userinfo", at(1)),
            ("url.query", at(2)),
            ("url.fragment", at(3)),
            ("url.no_host", at(4)),
            ("url.scheme", at(5)),
        ]
    );
}

// ---- bytes and paths

#[test]
fn non_utf8_json_names_the_position() {
    let bundle = Bundle {
        org: tree("org", &[("settings.json", b"{\n  \"a\": \"\xff\"\n}")]),
        ..Default::default()
    };
    let p = only_error(&bundle);
    assert_eq!(
        exact(&p),
        want(
            "file.not_utf8",
            "org/settings.json",
            2,
            9,
            "",
            "file is not valid UTF-8"
        )
    );
}

#[test]
fn non_utf8_cedar_and_markdown() {
    let bundle = Bundle {
        org: tree(
            "org",
            &[
                (
                    "policies/x.cedar",
                    b"forbid \xc3(principal, action, resource);",
                ),
                ("droids/d.md", b"---\nname: \xfe\n---\n"),
            ],
        ),
        ..Default::default()
    };
    let mut errs: Vec<Exact> = errors(&bundle).iter().map(exact).collect();
    errs.sort();
    assert_eq!(
        errs,
        vec![
            want(
                "file.not_utf8",
                "org/droids/d.md",
                1,
                1,
                "",
                "file is not valid UTF-8"
            ),
            want(
                "file.not_utf8",
                "org/policies/x.cedar",
                1,
                1,
                "",
                "file is not valid UTF-8"
            ),
        ]
    );
}

#[test]
fn bundle_paths_must_be_relative_and_free_of_dot_dot() {
    let files = [
        "../settings.json",
        "/etc/factory/settings.json",
        "policies/../../x.cedar",
        "droids\\evil.md",
        "./settings.json",
        "policies//x.cedar",
        "",
    ];
    let err: Problems =
        FileTree::from_files("org", files.iter().map(|p| (p.to_string(), b"{}".to_vec())))
            .unwrap_err();
    let got: Vec<Exact> = err.problems.iter().map(exact).collect();
    let expected: Vec<Exact> = files
        .iter()
        .map(|f| {
            let msg = format!(
                "path `{}` must be relative, `/`-separated and free of `..`",
                f.escape_debug()
            );
            want("bundle.bad_path", f, 0, 0, "", &msg)
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        err.problems[0].to_string(),
        "../settings.json:0:0: path `../settings.json` must be relative, `/`-separated and free of `..`"
    );
}

#[test]
fn bundle_paths_good_ones_pass_and_unknown_files_are_dropped() {
    let t = FileTree::from_files(
        "org",
        [
            "settings.json",
            "policies/a.cedar",
            "README.md",
            "skills/x/SKILL.md",
            "policies/nested/b.cedar",
        ]
        .map(|p| (p.to_string(), b"".to_vec())),
    )
    .unwrap();
    assert_eq!(
        t.files.keys().collect::<Vec<_>>(),
        ["policies/a.cedar", "settings.json"]
    );
}

#[test]
fn duplicate_bundle_path() {
    let err = FileTree::from_files(
        "org",
        [
            ("settings.json".to_string(), b"{}".to_vec()),
            ("settings.json".to_string(), b"{}".to_vec()),
        ],
    )
    .unwrap_err();
    let got: Vec<(&str, &str)> = err
        .problems
        .iter()
        .map(|p| (p.code, p.file.as_str()))
        .collect();
    assert_eq!(got, vec![("bundle.duplicate_path", "settings.json")]);
}

// ---- every problem, not just the first

#[test]
fn every_problem_of_every_layer_is_reported() {
    let bundle = Bundle {
        org: tree(
            "org",
            &[
                ("settings.json", br#"{"modelPolicy": {"blockedModelIds": "gpt-4", "allowCustomModels": "yes"}}"#),
                ("policy.json", br#"{"nope": 1, "byok": {"allowedProviders": ["azure"]}}"#),
                ("policies/x.cedar", b"forbid (principal, action, resource) when { context.nope };"),
                ("mcp.json", br#"{"mcpServers": {"a": {"type": "ws", "url": "https://a"}}}"#),
            ],
        ),
        projects: vec![ProjectTrees {
            id: "web".to_string(),
            project: tree("projects/web", &[("policies/p.cedar", b"permit (principal, action, resource);"), ("settings.json", b"{,}")]),
            folders: vec![],
        }],
        users: vec![(
            "alice".to_string(),
            tree("users/alice", &[("settings.json", br#"{"customModels": [{"model": "m", "provider": "bedrock", "apiKey": "${ALICE}"}]}"#)]),
        )],
    };
    let errs = errors(&bundle);
    let mut got: Vec<(&str, &str)> = errs.iter().map(|p| (p.file.as_str(), p.code)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("org/mcp.json", "mcp.invalid_type"),
            // one per rule, though the unscoped rule applies to three actions
            ("org/policies/x.cedar", "cedar.schema"),
            ("org/policy.json", "json.unknown_field"),
            ("org/policy.json", "policy.invalid_provider"),
            ("org/settings.json", "json.type"),
            ("org/settings.json", "json.type"),
            ("projects/web/policies/p.cedar", "cedar.project_permit"),
            ("projects/web/settings.json", "json.syntax"),
            ("users/alice/settings.json", "settings.invalid_provider"),
        ]
    );
}

// ---- how problems print

#[test]
fn problem_display_is_file_line_col_pointer_message() {
    let mut p = Problem {
        severity: Severity::Error,
        code: "json.type",
        file: "org/settings.json".to_string(),
        line: 3,
        col: 24,
        pointer: "/modelPolicy/blockedModelIds".to_string(),
        message: "expected an array of strings, found a string".to_string(),
    };
    assert_eq!(
        p.to_string(),
        "org/settings.json:3:24: /modelPolicy/blockedModelIds: expected an array of strings, found a string"
    );
    p.pointer.clear();
    assert_eq!(
        p.to_string(),
        "org/settings.json:3:24: expected an array of strings, found a string"
    );
    p.severity = Severity::Warning;
    assert_eq!(
        p.to_string(),
        "org/settings.json:3:24: warning: expected an array of strings, found a string"
    );
}

#[test]
fn problem_display_of_a_real_error() {
    let text = "{\n  \"modelPolicy\": {\n    \"blockedModelIds\": \"gpt-4\"\n  }\n}";
    let p = only_error(&org(&[("settings.json", text)]));
    assert_eq!(
        p.to_string(),
        "org/settings.json:3:24: /modelPolicy/blockedModelIds: expected an array of strings, found a string"
    );
}

#[test]
fn a_single_settings_file_as_org_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("managed.json");
    std::fs::write(&path, "{\n  \"modelPolicy\": {\"allowCustomModels\": 1}\n}").unwrap();
    let org = FileTree::read_path(&path).unwrap();
    let p = only_error(&Bundle {
        org,
        ..Default::default()
    });
    assert_eq!(p.file, path.display().to_string());
    assert_eq!(
        (p.code, p.line, p.col, p.pointer.as_str()),
        ("json.type", 2, 40, "/modelPolicy/allowCustomModels")
    );
}
