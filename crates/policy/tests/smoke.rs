use strata_policy::*;

fn tree(files: &[(&str, &str)]) -> FileTree {
    FileTree::from_files("org", files.iter().map(|(p, b)| (p.to_string(), b.as_bytes().to_vec()))).unwrap()
}

#[test]
fn empty_bundle_compiles_and_allows() {
    let snap = compile(&Bundle { org: tree(&[]), ..Default::default() }, &|_| None).unwrap();
    let d = decide(&snap, &Request::model("alice", "gpt-5"));
    println!("{d:#?}");
    assert!(d.allowed());
}

#[test]
fn blocked_model_denied() {
    let org = tree(&[("settings.json", r#"{"modelPolicy": {"blockedModelIds": ["gpt-4*"]}}"#)]);
    let snap = compile(&Bundle { org, ..Default::default() }, &|_| None).unwrap();
    let d = decide(&snap, &Request::model("alice", "gpt-4o"));
    println!("{d:#?}");
    assert!(!d.allowed());
}

#[test]
fn debug_sets() {
    let snap = compile(&Bundle { org: tree(&[]), ..Default::default() }, &|_| None).unwrap();
    for p in snap.org_sets.invoke_model.policies() { println!("{}", p); }
    println!("{:?}", snap.uids.lists.get(&strata_policy::rules::RuleKey::new(Level::Org, strata_policy::rules::Field::NoAllowlist)));
}
