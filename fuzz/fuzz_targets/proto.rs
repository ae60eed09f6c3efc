//! The protobuf-to-domain conversions: a `DecideRequest` (with the principal its identity
//! resolved to) into a domain request and back, and the files of a publish into a file tree
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use strata_proto::v1;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let Ok(req) = v1::DecideRequest::decode(bytes) else {
                return;
            };
            let principal = v1::Principal {
                user: "alice".to_string(),
                groups: vec!["leads".to_string()],
            };
            if let Ok(domain) = strata_proto::request(&req, &principal) {
                // what a client would send for the same request converts to the same request
                let again = strata_proto::decide_request(&domain);
                assert_eq!(strata_proto::request(&again, &principal).ok(), Some(domain));
            }
        }
        1 => {
            let Ok(req) = v1::PublishOrgRequest::decode(bytes) else {
                return;
            };
            let _ = strata_proto::file_tree("org", &req.files);
        }
        2 => {
            let Ok(req) = v1::PublishProjectRequest::decode(bytes) else {
                return;
            };
            let _ = strata_proto::file_tree(&req.project_id, &req.files);
            for f in &req.folders {
                let _ = strata_proto::file_tree(&f.path, &f.files);
            }
        }
        _ => {
            let Ok(req) = v1::BatchDecideRequest::decode(bytes) else {
                return;
            };
            std::hint::black_box(req);
        }
    }
});
