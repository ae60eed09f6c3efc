//! Which API a request path is, under every base-URL shape Droid users configure: with and
//! without `/v1` (Droid's Anthropic client appends `/v1/messages` to a base URL that may already
//! end in `/v1`), and behind per-provider prefixes such as `/anthropic` and `/openai/v1`.

/// The wire APIs the gateway speaks
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// Anthropic Messages, `POST /v1/messages`
    Messages,
    /// Anthropic `POST /v1/messages/count_tokens`
    CountTokens,
    /// OpenAI Responses, `POST /v1/responses`
    Responses,
    /// OpenAI Chat Completions, `POST /v1/chat/completions`
    ChatCompletions,
    /// `GET /v1/models`
    Models,
}

impl Api {
    /// The provider value (as in `customModels[].provider`) this API belongs to
    pub fn provider(self) -> &'static str {
        match self {
            Api::Messages | Api::CountTokens => "anthropic",
            Api::Responses => "openai",
            Api::ChatCompletions => "generic-chat-completion-api",
            Api::Models => "",
        }
    }

    /// The path below the upstream's base URL
    pub fn upstream_path(self) -> &'static str {
        match self {
            Api::Messages => "/v1/messages",
            Api::CountTokens => "/v1/messages/count_tokens",
            Api::Responses => "/v1/responses",
            Api::ChatCompletions => "/v1/chat/completions",
            Api::Models => "/v1/models",
        }
    }

    /// Errors in this API's shape: Anthropic's or OpenAI's
    pub fn anthropic_shaped(self) -> bool {
        matches!(self, Api::Messages | Api::CountTokens)
    }

    pub fn label(self) -> &'static str {
        match self {
            Api::Messages => "messages",
            Api::CountTokens => "count_tokens",
            Api::Responses => "responses",
            Api::ChatCompletions => "chat_completions",
            Api::Models => "models",
        }
    }
}

/// Where Droid sends its built-in (catalogue) models when `FACTORY_API_BASE_URL` points at this
/// gateway: `/api/llm/a/v1/messages` (Anthropic), `/api/llm/o/v1/responses` and
/// `/api/llm/o/v1/chat/completions` (OpenAI and others), with the gateway token as the bearer.
/// (`/api/llm/g/…`, Google's own API, is not one this gateway speaks.)
pub const FACTORY_ROUTES: [&str; 3] = [
    "/api/llm/a/v1/messages",
    "/api/llm/o/v1/responses",
    "/api/llm/o/v1/chat/completions",
];

/// Is `path` one of Droid's routes for built-in models
pub fn is_factory_route(path: &str) -> bool {
    path.starts_with("/api/llm/")
}

/// What is left of a path once every leading base-URL segment (`anthropic`, `openai`, `v1`, and
/// Droid's `api/llm/a`, `api/llm/o`) and trailing slash is stripped
fn endpoint(path: &str) -> &str {
    let mut rest = path.trim_end_matches('/');
    for prefix in ["/api/llm/a/", "/api/llm/o/"] {
        if let Some(r) = rest.strip_prefix(prefix) {
            rest = r;
            break;
        }
    }
    loop {
        let trimmed = rest.trim_start_matches('/');
        let next = ["anthropic/", "openai/", "v1/"]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p));
        match next {
            Some(r) => rest = r,
            None => return trimmed,
        }
    }
}

/// Strip every leading base-URL segment (`anthropic`, `openai`, `v1`) and match what is left
pub fn classify(path: &str) -> Option<Api> {
    match endpoint(path) {
        "messages" => Some(Api::Messages),
        "messages/count_tokens" => Some(Api::CountTokens),
        "responses" => Some(Api::Responses),
        "chat/completions" => Some(Api::ChatCompletions),
        "models" => Some(Api::Models),
        rest if model_id(rest).is_some() => Some(Api::Models),
        _ => None,
    }
}

/// The id in `GET /v1/models/{id}` (percent-decoded), under any base URL shape; `None` for the list
pub fn model_id(path: &str) -> Option<String> {
    let id = endpoint(path).strip_prefix("models/")?;
    if id.is_empty() {
        return None;
    }
    // SDKs escape ids in paths; a malformed escape is kept as it is
    Some(
        percent_encoding::percent_decode_str(id)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Whether an unknown path looks like an Anthropic one (for the shape of its 404)
pub fn looks_anthropic(path: &str) -> bool {
    path.contains("anthropic") || path.contains("/messages")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_base_url_shape() {
        for (path, api) in [
            ("/v1/messages", Api::Messages),
            ("/v1/v1/messages", Api::Messages),
            ("/messages", Api::Messages),
            ("/anthropic/v1/messages", Api::Messages),
            ("/anthropic/v1/v1/messages", Api::Messages),
            ("/v1/messages/count_tokens", Api::CountTokens),
            ("/v1/responses", Api::Responses),
            ("/openai/v1/responses", Api::Responses),
            ("/v1/chat/completions", Api::ChatCompletions),
            ("/chat/completions", Api::ChatCompletions),
            ("/openai/v1/chat/completions/", Api::ChatCompletions),
            ("/v1/models", Api::Models),
            ("/anthropic/v1/models", Api::Models),
            ("/v1/models/claude-sonnet-4-5", Api::Models),
            ("/openai/v1/models/gpt-5-mini/", Api::Models),
            ("/v1/models/", Api::Models),
            ("/api/llm/a/v1/messages", Api::Messages),
            ("/api/llm/o/v1/responses", Api::Responses),
            ("/api/llm/o/v1/chat/completions", Api::ChatCompletions),
        ] {
            assert_eq!(classify(path), Some(api), "{path}");
        }
        for path in [
            "/",
            "/v1",
            "/v1/completions",
            "/v1/messages/batches",
            "/v2/messages",
            "/api/llm/g/v1/generate",
            "/admin",
        ] {
            assert_eq!(classify(path), None, "{path}");
        }
    }

    #[test]
    fn model_ids_in_paths() {
        assert_eq!(model_id("/v1/models"), None);
        assert_eq!(model_id("/v1/models/"), None);
        assert_eq!(
            model_id("/v1/models/gpt-5-mini").as_deref(),
            Some("gpt-5-mini")
        );
        assert_eq!(
            model_id("/anthropic/v1/v1/models/claude-sonnet-4-5/").as_deref(),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(
            model_id("/v1/models/accounts%2Facme%2Fm%201").as_deref(),
            Some("accounts/acme/m 1")
        );
        assert_eq!(model_id("/v1/models/bad%zz%4").as_deref(), Some("bad%zz%4"));
    }
}
