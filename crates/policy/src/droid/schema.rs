//! Droid's org schema (placeholder until the validator lands in this session's merge)

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

pub fn validate(_doc: &serde_json::Value) -> Vec<SchemaError> {
    Vec::new()
}
