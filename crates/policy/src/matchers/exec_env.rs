//! Environment variables that change what a stdio MCP server runs: which binary a bare command
//! name resolves to, which code an interpreter loads before the server's own, which package a
//! launcher (`npx`, `uvx`, `go run`) downloads. An allowlist that pins `npx -y @acme/mcp` means
//! little when `env` sets `NODE_OPTIONS=--require /tmp/x.js`.

/// The variables, each with why it matters. [`is_exec_env`] also covers every `LD_*`, `DYLD_*`,
/// `BASH_FUNC_*` and (any case) `npm_config_*` name.
pub const EXEC_ENV_VARS: &[(&str, &str)] = &[
    (
        "PATH",
        "decides which binary a bare command name such as `npx` runs",
    ),
    (
        "HOME",
        "moves the rc files tools read (`.npmrc`, `.gitconfig`, `.pypirc`), and what they point to",
    ),
    (
        "XDG_CONFIG_HOME",
        "moves the config files of git, uv, pip and others",
    ),
    (
        "NODE_OPTIONS",
        "adds `--require`/`--import` of arbitrary code to every node process",
    ),
    ("NODE_PATH", "adds directories node resolves modules from"),
    (
        "LD_PRELOAD",
        "loads a shared library into every dynamically linked process",
    ),
    (
        "LD_LIBRARY_PATH",
        "decides which shared libraries a process loads",
    ),
    (
        "LD_AUDIT",
        "loads an auditing shared library into every process",
    ),
    (
        "DYLD_INSERT_LIBRARIES",
        "loads a dylib into every process (macOS)",
    ),
    (
        "DYLD_LIBRARY_PATH",
        "decides which dylibs a process loads (macOS)",
    ),
    (
        "DYLD_FRAMEWORK_PATH",
        "decides which frameworks a process loads (macOS)",
    ),
    (
        "GCONV_PATH",
        "makes glibc's iconv load modules from a chosen directory",
    ),
    (
        "OPENSSL_CONF",
        "an OpenSSL config can load engines and providers (shared libraries)",
    ),
    (
        "PYTHONPATH",
        "puts modules ahead of the standard library and the server's own",
    ),
    (
        "PYTHONSTARTUP",
        "a file python runs first (interactive sessions)",
    ),
    ("PYTHONHOME", "swaps the python standard library"),
    (
        "PYTHONUSERBASE",
        "moves the user site-packages python imports from",
    ),
    (
        "PYTHONWARNINGS",
        "a warning filter naming a category imports that module",
    ),
    (
        "VIRTUAL_ENV",
        "decides which environment, and so which packages, a python launcher uses",
    ),
    (
        "UV_PYTHON",
        "decides which python interpreter `uv`/`uvx` runs",
    ),
    (
        "UV_INDEX_URL",
        "decides where `uvx` downloads the server package from",
    ),
    (
        "UV_DEFAULT_INDEX",
        "decides where `uvx` downloads the server package from",
    ),
    ("UV_INDEX", "adds package indexes `uvx` downloads from"),
    (
        "UV_EXTRA_INDEX_URL",
        "adds package indexes `uvx` downloads from",
    ),
    ("UV_FIND_LINKS", "adds places `uvx` takes packages from"),
    (
        "UV_CONFIG_FILE",
        "a uv config that can change indexes and interpreters",
    ),
    ("PIP_INDEX_URL", "decides where pip downloads packages from"),
    (
        "PIP_EXTRA_INDEX_URL",
        "adds package indexes pip downloads from",
    ),
    ("PIP_CONFIG_FILE", "a pip config that can change indexes"),
    ("PERL5LIB", "puts modules ahead of perl's own"),
    ("PERLLIB", "puts modules ahead of perl's own"),
    (
        "PERL5OPT",
        "adds command-line options (`-M` loads a module) to every perl",
    ),
    (
        "RUBYOPT",
        "adds command-line options (`-r` loads a file) to every ruby",
    ),
    ("RUBYLIB", "puts files ahead of ruby's own"),
    ("GEM_HOME", "decides which installed gems ruby loads"),
    ("GEM_PATH", "decides which installed gems ruby loads"),
    (
        "BUNDLE_GEMFILE",
        "decides which Gemfile, and so which gems, bundler loads",
    ),
    (
        "JAVA_TOOL_OPTIONS",
        "adds JVM options (`-javaagent`) to every java process",
    ),
    (
        "_JAVA_OPTIONS",
        "adds JVM options (`-javaagent`) to every java process",
    ),
    (
        "JDK_JAVA_OPTIONS",
        "adds JVM options (`-javaagent`) to the java launcher",
    ),
    ("JAVA_HOME", "decides which JVM launcher scripts run"),
    ("CLASSPATH", "decides which classes the JVM loads"),
    (
        "BASH_ENV",
        "a file every non-interactive bash sources first",
    ),
    ("ENV", "a file sh and interactive bash source first"),
    (
        "SHELLOPTS",
        "turns on shell options (`xtrace`, which expands `PS4`) in every bash",
    ),
    (
        "PS4",
        "expanded, command substitutions included, on every traced command",
    ),
    ("IFS", "changes how shell scripts split words"),
    (
        "GIT_SSH_COMMAND",
        "the command git runs to reach an ssh remote",
    ),
    ("GIT_SSH", "the program git runs to reach an ssh remote"),
    ("GIT_ASKPASS", "a program git runs to ask for credentials"),
    ("GIT_EXEC_PATH", "decides where git finds its sub-commands"),
    (
        "GIT_CONFIG_GLOBAL",
        "a git config that can set `core.sshCommand`, `core.fsmonitor`, aliases",
    ),
    (
        "GIT_CONFIG_SYSTEM",
        "a git config that can set `core.sshCommand`, `core.fsmonitor`, aliases",
    ),
    (
        "GIT_CONFIG_COUNT",
        "with `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`, sets any git config",
    ),
    ("GIT_CONFIG_PARAMETERS", "sets any git config"),
    (
        "NPM_CONFIG_PREFIX",
        "decides where npm installs and finds global packages",
    ),
    (
        "npm_config_script_shell",
        "the shell npm and npx run scripts with",
    ),
    (
        "GOFLAGS",
        "adds flags (`-toolexec`, `-modfile`) to every go command",
    ),
    ("GOPROXY", "decides where `go run` downloads modules from"),
    ("GOTOOLCHAIN", "makes go download and run another toolchain"),
    (
        "CARGO_HOME",
        "a cargo config there can set `build.rustc-wrapper` and runners",
    ),
    ("RUSTC_WRAPPER", "a program cargo runs instead of rustc"),
    (
        "RUSTC_WORKSPACE_WRAPPER",
        "a program cargo runs instead of rustc",
    ),
];

/// Whether setting `name` can change what a stdio server runs: a name of [`EXEC_ENV_VARS`]
/// (case-sensitive, as on Linux), any `LD_*`, `DYLD_*` or `BASH_FUNC_*` name (exported bash
/// functions override commands), or `npm_config_*` in any case (npm reads them all, and the
/// registry or script shell decides what `npx` runs)
pub fn is_exec_env(name: &str) -> bool {
    exec_env(name).is_some()
}

/// Why setting `name` changes what a process runs, if it does
pub fn exec_env(name: &str) -> Option<&'static str> {
    if let Some((_, why)) = EXEC_ENV_VARS.iter().find(|(n, _)| *n == name) {
        return Some(why);
    }
    if name.starts_with("LD_") || name.starts_with("DYLD_") {
        return Some("a dynamic-loader setting");
    }
    if name.starts_with("BASH_FUNC_") {
        return Some("defines a bash function every bash imports");
    }
    name.get(..11)
        .is_some_and(|p| p.eq_ignore_ascii_case("npm_config_"))
        .then_some("an npm setting (`script-shell`, `prefix`, `node-options`, ...)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_and_families() {
        for n in [
            "PATH",
            "NODE_OPTIONS",
            "LD_PRELOAD",
            "LD_BIND_NOW",
            "DYLD_INSERT_LIBRARIES",
            "DYLD_FALLBACK_LIBRARY_PATH",
            "PYTHONPATH",
            "_JAVA_OPTIONS",
            "BASH_ENV",
            "ENV",
            "BASH_FUNC_npx%%",
            "GIT_SSH_COMMAND",
            "npm_config_script_shell",
            "NPM_CONFIG_SCRIPT_SHELL",
            "npm_config_registry",
            "NPM_CONFIG_PREFIX",
            "Npm_Config_Userconfig",
            "UV_PYTHON",
            "VIRTUAL_ENV",
            "GOFLAGS",
        ] {
            assert!(is_exec_env(n), "{n}");
        }
    }

    #[test]
    fn others_are_not() {
        for n in [
            "path",
            "Path",
            "node_options",
            "ld_preload",
            "GITHUB_TOKEN",
            "ACME_API_KEY",
            "LANG",
            "TZ",
            "NODE_ENV",
            "npm_config",
            "npm",
            "",
            "ENVIRONMENT",
            "LDFLAGS",
        ] {
            assert!(!is_exec_env(n), "{n}");
        }
    }

    #[test]
    fn entries_are_unique_and_explained() {
        let mut names: Vec<&str> = EXEC_ENV_VARS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EXEC_ENV_VARS.len());
        assert!(
            EXEC_ENV_VARS
                .iter()
                .all(|(_, why)| !why.is_empty() && !why.ends_with('.'))
        );
    }
}
