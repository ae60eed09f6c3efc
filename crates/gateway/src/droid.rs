//! Droid `customModels` entries for the models a person may use, pointed at this gateway with
//! their gateway token: what `policy up` prints and `policy droid-settings` writes.

use serde_json::{Value, json};
use strata_proto::v1;

/// `models` are the `models` of an effective-settings answer (`ResolveSettings`); only the ones
/// used with the central key are listed (BYOK models keep the person's own entries)
pub fn custom_models(models: &[v1::ModelView], gateway_url: &str, token: &str) -> Vec<Value> {
    let gateway_url = gateway_url.trim_end_matches('/');
    models
        .iter()
        .filter(|m| m.key_mode == "central")
        .map(|m| {
            let model = m.model.as_str();
            let provider = match m.provider.as_str() {
                "" if model.starts_with("claude") => "anthropic",
                "" => "openai",
                p => p,
            };
            // Droid's Anthropic client appends /v1/messages; the OpenAI ones /responses or /chat/completions
            let base = if provider == "anthropic" {
                gateway_url.to_string()
            } else {
                format!("{gateway_url}/v1")
            };
            let name = if m.display_name.is_empty() {
                model
            } else {
                &m.display_name
            };
            let max = if m.max_output_tokens == 0 {
                16_384
            } else {
                m.max_output_tokens
            };
            json!({
                "model": model,
                "displayName": format!("{name} (Strata)"),
                "baseUrl": base,
                "apiKey": token,
                "provider": provider,
                "maxOutputTokens": max,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_follow_what_droid_appends() {
        let view = |model: &str, provider: &str, key_mode: &str, max: u64| v1::ModelView {
            model: model.into(),
            provider: provider.into(),
            key_mode: key_mode.into(),
            max_output_tokens: max,
            ..Default::default()
        };
        let models = vec![
            view("claude-sonnet-4-5", "anthropic", "central", 8192),
            view("gpt-5-codex", "openai", "central", 0),
            view("mine", "anthropic", "byok", 0),
        ];
        let out = custom_models(&models, "http://gw:8787/", "tok");
        assert_eq!(out.len(), 2, "BYOK models are not rewritten");
        assert_eq!(out[0]["baseUrl"], "http://gw:8787");
        assert_eq!(out[0]["maxOutputTokens"], 8192);
        assert_eq!(out[1]["baseUrl"], "http://gw:8787/v1");
        assert_eq!(out[1]["apiKey"], "tok");
    }
}
