//! Environment variables that change what a stdio MCP server runs: a server allowlisted by its
//! command runs something else when a lower layer sets one of these in its `env`.

/// The variables, each with what it does; names compare case-sensitively, as on Linux, and
/// every `LD_*`, `DYLD_*` and `npm_config_*` variable counts too (see [`is_exec_env`])
pub const EXEC_ENV_VARS: &[(&str, &str)] = &[
    ("PATH", "chooses which executable a command name runs"),
    (
        "NODE_OPTIONS",
        "adds `--require`/`--import` modules to every node process",
    ),
    ("NODE_PATH", "adds directories node resolves modules from"),
    ("LD_PRELOAD", "loads a shared library into every process"),
    (
        "LD_LIBRARY_PATH",
        "chooses which shared libraries are loaded",
    ),
    ("LD_AUDIT", "loads an auditing library into every process"),
    (
        "DYLD_INSERT_LIBRARIES",
        "loads a library into every process (macOS)",
    ),
    (
        "DYLD_LIBRARY_PATH",
        "chooses which libraries are loaded (macOS)",
    ),
    (
        "DYLD_FRAMEWORK_PATH",
        "chooses which frameworks are loaded (macOS)",
    ),
    ("PYTHONPATH", "adds directories python imports modules from"),
    ("PYTHONSTARTUP", "a file python runs at start"),
    ("PYTHONHOME", "chooses python's standard library"),
    ("PYTHONUSERBASE", "chooses python's user site-packages"),
    ("PERL5LIB", "adds directories perl loads modules from"),
    ("PERL5OPT", "adds command-line options (`-M`) to every perl"),
    ("RUBYOPT", "adds command-line options (`-r`) to every ruby"),
    ("RUBYLIB", "adds directories ruby loads libraries from"),
    (
        "JAVA_TOOL_OPTIONS",
        "adds options (`-javaagent`) to every JVM",
    ),
    ("_JAVA_OPTIONS", "adds options to every JVM"),
    ("JDK_JAVA_OPTIONS", "adds options to the java launcher"),
    ("CLASSPATH", "chooses where the JVM loads classes from"),
    ("BASH_ENV", "a file every non-interactive bash runs first"),
    ("ENV", "a file every POSIX shell runs first"),
    ("SHELLOPTS", "shell options every bash starts with"),
    (
        "PS4",
        "expanded (command substitution included) by bash when tracing",
    ),
    ("IFS", "changes how shell scripts split words"),
    ("GIT_SSH_COMMAND", "a command git runs for ssh"),
    ("GIT_EXEC_PATH", "where git finds its sub-commands"),
    ("UV_PYTHON", "chooses the interpreter uv/uvx runs"),
    ("VIRTUAL_ENV", "chooses the python environment tools run in"),
    ("GOFLAGS", "adds flags (`-toolexec`) to every go command"),
];

/// Whether setting `name` can change what a process runs, and why
pub fn exec_env(name: &str) -> Option<&'static str> {
    if let Some((_, why)) = EXEC_ENV_VARS.iter().find(|(n, _)| *n == name) {
        return Some(why);
    }
    if name.starts_with("LD_") {
        return Some("a dynamic-loader setting");
    }
    if name.starts_with("DYLD_") {
        return Some("a dynamic-loader setting (macOS)");
    }
    if name.len() > 11 && name[..11].eq_ignore_ascii_case("npm_config_") {
        return Some("an npm setting (`script-shell`, `prefix`, `node-options`, ...)");
    }
    None
}

/// Whether setting `name` can change what a process runs
pub fn is_exec_env(name: &str) -> bool {
    exec_env(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_environment() {
        for n in [
            "PATH",
            "NODE_OPTIONS",
            "LD_PRELOAD",
            "LD_BIND_NOW",
            "DYLD_X",
            "NPM_CONFIG_PREFIX",
            "npm_config_script_shell",
            "PYTHONPATH",
        ] {
            assert!(is_exec_env(n), "{n}");
        }
        for n in ["GITHUB_TOKEN", "path", "HOME", "NODE_ENV", "npm_config_"] {
            assert!(!is_exec_env(n), "{n}");
        }
    }
}
