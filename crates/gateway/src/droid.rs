//! Droid `customModels` entries for the models a person may use, pointed at this gateway with
//! their gateway token: what `policy up` prints and `policy droid-settings` writes.

use serde_json::{Value, json};

/// `models` are the `models` of an effective-settings answer (`ResolveSettings`); only the ones
/// used with the central key are listed (BYOK models keep the person's own entries)
pub fn custom_models(models: &[Value], gateway_url: &str, token: &str) -> Vec<Value> {
    let gateway_url = gateway_url.trim_end_matches('/');
    models
        .iter()
        .filter(|m| m["keyMode"] == "central")
        .filter_map(|m| {
            let model = m["model"].as_str()?;
            let provider = m["provider"]
                .as_str()
                .unwrap_or(if model.starts_with("claude") {
                    "anthropic"
                } else {
                    "openai"
                });
            // Droid's Anthropic client appends /v1/messages; the OpenAI ones /responses or /chat/completions
            let base = if provider == "anthropic" {
                gateway_url.to_string()
            } else {
                format!("{gateway_url}/v1")
            };
            let name = m["displayName"].as_str().unwrap_or(model);
            Some(json!({
                "model": model,
                "displayName": format!("{name} (Strata)"),
                "baseUrl": base,
                "apiKey": token,
                "provider": provider,
                "maxOutputTokens": m["maxOutputTokens"].as_u64().unwrap_or(16_384),
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_follow_what_droid_appends() {
        let models = vec![
            json!({"model": "claude-sonnet-4-5", "provider": "anthropic", "keyMode": "central", "maxOutputTokens": 8192}),
            json!({"model": "gpt-5-codex", "provider": "openai", "keyMode": "central"}),
            json!({"model": "mine", "provider": "anthropic", "keyMode": "byok"}),
        ];
        let out = custom_models(&models, "http://gw:8787/", "tok");
        assert_eq!(out.len(), 2, "BYOK models are not rewritten");
        assert_eq!(out[0]["baseUrl"], "http://gw:8787");
        assert_eq!(out[0]["maxOutputTokens"], 8192);
        assert_eq!(out[1]["baseUrl"], "http://gw:8787/v1");
        assert_eq!(out[1]["apiKey"], "tok");
    }
}
