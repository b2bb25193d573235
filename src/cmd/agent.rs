//! `mirrorgate agent`: the options an agent starts with, checked before it
//! contacts the server (the agent itself is [`crate::vantage::agent`]).

use std::path::Path;

use crate::config::Secret;
use crate::vantage::agent::AgentOptions;

/// The agent's options, checked before anything starts.
pub fn options(server: &str, token_file: &Path, name: Option<String>) -> Result<AgentOptions, String> {
    let mut server = url::Url::parse(server).map_err(|e| format!("--server \"{server}\" is not a URL: {e}"))?;
    if !matches!(server.scheme(), "http" | "https") {
        return Err(format!("--server \"{server}\" must be an http or https URL"));
    }
    // Paths are joined onto it: it must end in a slash to keep its own path.
    if !server.path().ends_with('/') {
        server.set_path(&format!("{}/", server.path()));
    }
    let text = std::fs::read_to_string(token_file)
        .map_err(|e| format!("--token-file \"{}\" cannot be read: {e}", token_file.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the token in --token-file \"{}\" must be at least 16 printable characters without spaces",
            token_file.display()
        ));
    }
    Ok(AgentOptions {
        server,
        token: Secret::new(token),
        name,
    })
}
