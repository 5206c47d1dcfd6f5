//! What is printed about the options, from the one table: the man pages
//! `holdline(1)` and `holdline.toml(5)` (`holdline man`), and the shell
//! completions for bash, zsh and fish (`holdline completions SHELL`).
//! `contrib/man/` holds the pages as generated; `tests/cli.rs` checks they
//! are what this prints, list exactly the table's options, and render
//! without a warning.

use std::fmt::Write;

use super::Config;
use super::options::{OPTIONS, OptionSpec, Show, Topic};

/// The shells [`completions`] knows.
pub const SHELLS: [&str; 3] = ["bash", "zsh", "fish"];

/// Text escaped for roff: backslashes, a leading dot or quote, hyphens
/// (so that flags copy as ASCII hyphens).
fn roff(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c => out.push(c),
        }
    }
    if out.starts_with(['.', '\'']) {
        out.insert_str(0, "\\&");
    }
    out
}

fn sighup(spec: &OptionSpec) -> &'static str {
    match spec.show {
        Show::Live(_) | Show::Site(_) => "SIGHUP applies a change.",
        Show::Fixed(_) => "A change waits for a restart.",
        Show::CommandLine(_) => "",
    }
}

/// One option as a `.TP` paragraph, as a flag (`key` false) or as a file
/// key.
fn option_paragraph(out: &mut String, spec: &OptionSpec, key: bool, defaults: &Config) {
    let name = if key { spec.key() } else { spec.flag };
    let value = match (spec.value, key) {
        (Some(v), false) => format!(" \\fI{}\\fR", roff(v)),
        (Some(v), true) if spec.repeatable => format!(" = [\\fI{}\\fR, ...]", roff(v)),
        (Some(v), true) => format!(" = \\fI{}\\fR", roff(v)),
        (None, false) => String::new(),
        (None, true) => " = true".to_string(),
    };
    let _ = writeln!(out, ".TP\n.B {}{value}", roff(name));
    let _ = write!(out, "{}.", roff(spec.help));
    let default = spec.shown(defaults);
    if !default.is_empty() {
        let _ = write!(out, " Default: {}.", roff(&default));
    }
    let hup = sighup(spec);
    if !hup.is_empty() {
        let _ = write!(out, " {hup}");
    }
    out.push('\n');
}

/// `holdline(1)`.
pub fn man_page() -> String {
    let defaults = Config::default();
    let mut out = String::new();
    let version = env!("CARGO_PKG_VERSION");
    let _ = write!(
        out,
        ".TH HOLDLINE 1 \"\" \"holdline {version}\" \"User Commands\"\n\
         .SH NAME\nholdline \\- a static\\-file HTTP/1.1 server on one epoll reactor\n\
         .SH SYNOPSIS\n\
         .B holdline\n[\\fIOPTIONS\\fR] [\\fIROOT\\fR]\n.br\n\
         .B holdline check\n[\\fIOPTIONS\\fR] [\\fIROOT\\fR]\n.br\n\
         .B holdline hash\\-password\n[\\fB\\-\\-cost\\fR \\fIN\\fR]\n.br\n\
         .B holdline completions\n\\fIbash\\fR|\\fIzsh\\fR|\\fIfish\\fR\n\
         .SH DESCRIPTION\n\
         holdline serves the files beneath \\fIROOT\\fR (default: the current directory) over \
         HTTP/1.1 and HTTPS, with keep\\-alive, pipelining, ranges, conditional requests and \
         compression, on one event loop per worker. Every limit and timeout is an option; \
         every option but \\fB\\-\\-config\\fR, \\fB\\-\\-help\\fR and \\fB\\-\\-version\\fR is \
         also a key of the configuration file, \\fBholdline.toml\\fR(5), which describes sites \
         and path rules as well.\n\
         .PP\n\\fBholdline check\\fR reads the configuration, opens every ROOT and certificate, \
         compiles every rule, prints what would be served and exits 0, or prints every mistake \
         with its file, line and key and exits 1. \\fBholdline hash\\-password\\fR reads a \
         password on standard input and prints its bcrypt hash for an \\fBauth\\fR rule's users \
         file. \\fBholdline completions\\fR prints a completion script for the shell named.\n\
         .SH OPTIONS\n"
    );
    for topic in Topic::ALL {
        let _ = writeln!(out, ".SS {}", roff(topic.heading()));
        for spec in OPTIONS.iter().filter(|o| o.topic == topic) {
            option_paragraph(&mut out, spec, false, &defaults);
        }
    }
    out.push_str(
        ".SH SIGNALS\n\
         .TP\n.B SIGHUP\nReads the configuration file again and applies what may change \
         live (a file that fails keeps the running configuration); rereads the certificates.\n\
         .TP\n.B SIGUSR1\nReopens the access log (after logrotate moved it).\n\
         .TP\n.B SIGUSR2\nStarts the new binary and hands it the listeners and the idle \
         connections: an upgrade without a lost request.\n\
         .TP\n.BR SIGTERM \", \" SIGINT\nShuts down gracefully (after \\fB\\-\\-drain\\-delay\\fR); \
         a second one exits at once.\n\
         .SH FILES\n\
         .TP\n.I /etc/holdline/holdline.toml\nThe configuration file, by convention \
         (\\fB\\-\\-config\\fR names it).\n\
         .SH EXIT STATUS\n\
         0 when it stopped as asked (or \\fBcheck\\fR found no mistake); 1 when it could not \
         start or serve (or \\fBcheck\\fR found mistakes); 2 for a command line it cannot \
         read.\n\
         .SH ENVIRONMENT\n\
         .TP\n.B RUST_LOG\nThe log level, such as \\fBdebug\\fR (default: \\fBinfo\\fR).\n\
         .SH EXAMPLES\n\
         .TP\nServe a directory on port 8080:\n.B holdline \\-\\-listen 127.0.0.1:8080 /srv/www\n\
         .TP\nCheck a configuration before a reload:\n\
         .B holdline check \\-\\-config /etc/holdline/holdline.toml\n\
         .SH SEE ALSO\n\\fBholdline.toml\\fR(5), \\fBsystemctl\\fR(1)\n",
    );
    out
}

/// `holdline.toml(5)`.
pub fn config_man_page() -> String {
    let defaults = Config::default();
    let mut out = String::new();
    let version = env!("CARGO_PKG_VERSION");
    let _ = write!(
        out,
        ".TH HOLDLINE.TOML 5 \"\" \"holdline {version}\" \"File Formats\"\n\
         .SH NAME\nholdline.toml \\- the configuration file of holdline\n\
         .SH DESCRIPTION\n\
         A TOML file named by \\fBholdline \\-\\-config\\fR. Its keys are the long options \
         without their dashes (\\fBkeepalive\\-timeout = 5\\fR); a repeatable option takes an \
         array (\\fBlisten = [\"127.0.0.1:8080\"]\\fR), a switch \\fBtrue\\fR. Options given on \
         the command line replace the file's (a repeatable one, the whole array). A mistake \
         is reported with the file, the line and the key, and holdline does not start; \
         SIGHUP reads the file again and keeps the running configuration when it fails.\n\
         .SS Sites\n\
         The top level is the default site. Each \\fB[[site]]\\fR block is another, picked by \
         the request's host: it takes \\fBhost\\fR (required) and the keys of a site (marked \
         below), and takes what it does not set from the top level, \\fBhost\\fR excepted.\n\
         .SH KEYS\n"
    );
    for topic in Topic::ALL {
        let specs: Vec<_> = OPTIONS
            .iter()
            .filter(|o| o.topic == topic && !o.command_line_only())
            .collect();
        if specs.is_empty() {
            continue;
        }
        let _ = writeln!(out, ".SS {}", roff(topic.heading()));
        for spec in specs {
            option_paragraph(&mut out, spec, true, &defaults);
            if spec.per_site() {
                out.push_str("A [[site]] block may set it.\n");
            }
        }
    }
    out.push_str(
        ".SH EXAMPLE\n.nf\n\
         root = \"/srv/www\"\n\
         listen = [\"0.0.0.0:80\"]\n\
         header = [\"X\\-Content\\-Type\\-Options: nosniff\"]\n\
         \n\
         [[site]]\n\
         host = [\"static.example.com\"]\n\
         root = \"/srv/static\"\n\
         rule = [\"/assets/** header Cache\\-Control: public, max\\-age=31536000, immutable\"]\n\
         .fi\n\
         .SH SEE ALSO\n\\fBholdline\\fR(1)\n",
    );
    out
}

/// A completion script for `shell` (one of [`SHELLS`]).
pub fn completions(shell: &str) -> Option<String> {
    match shell {
        "bash" => Some(bash()),
        "zsh" => Some(zsh()),
        "fish" => Some(fish()),
        _ => None,
    }
}

/// Options whose value is a path: completed as files (directories for
/// ROOT).
fn path_kind(spec: &OptionSpec) -> Option<&'static str> {
    match spec.flag {
        "--root" => Some("dir"),
        "--config" | "--tls-cert" | "--tls-key" | "--access-log" => Some("file"),
        _ => None,
    }
}

fn bash() -> String {
    let flags: Vec<&str> = OPTIONS.iter().map(|o| o.flag).collect();
    let mut cases = String::new();
    for spec in OPTIONS.iter().filter(|o| o.value.is_some()) {
        let action = match (spec.choices, path_kind(spec)) {
            ([], Some("dir")) => "COMPREPLY=($(compgen -d -- \"$cur\"))".to_string(),
            ([], Some(_)) => "COMPREPLY=($(compgen -f -- \"$cur\"))".to_string(),
            ([], None) => "COMPREPLY=()".to_string(),
            (choices, _) => format!(
                "COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))",
                choices.join(" ")
            ),
        };
        let _ = writeln!(cases, "        {}) {action}; return ;;", spec.flag);
    }
    format!(
        "# bash completion for holdline (holdline completions bash)\n\
         _holdline() {{\n    \
         local cur=\"${{COMP_WORDS[COMP_CWORD]}}\" prev=\"${{COMP_WORDS[COMP_CWORD-1]}}\"\n    \
         if [ \"$COMP_CWORD\" -eq 1 ] && [[ \"$cur\" != -* ]]; then\n        \
         COMPREPLY=($(compgen -W \"check hash-password completions\" -- \"$cur\") $(compgen -d -- \"$cur\"))\n        \
         return\n    fi\n    \
         if [ \"$prev\" = completions ]; then\n        \
         COMPREPLY=($(compgen -W \"{shells}\" -- \"$cur\"))\n        return\n    fi\n    \
         case \"$prev\" in\n{cases}    esac\n    \
         if [[ \"$cur\" == -* ]]; then\n        \
         COMPREPLY=($(compgen -W \"{flags}\" -- \"$cur\"))\n    else\n        \
         COMPREPLY=($(compgen -d -- \"$cur\"))\n    fi\n}}\n\
         complete -F _holdline holdline\n",
        shells = SHELLS.join(" "),
        flags = flags.join(" "),
    )
}

/// Text for inside a zsh `_arguments` spec: brackets, colons, quotes and
/// backslashes escaped.
fn zsh_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '[' | ']' | ':' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\'' => out.push_str("'\\''"),
            c => out.push(c),
        }
    }
    out
}

fn zsh() -> String {
    let mut specs = String::new();
    for spec in OPTIONS {
        let help = zsh_text(spec.help);
        let repeat = if spec.repeatable { "*" } else { "" };
        let value = match (spec.value, spec.choices, path_kind(spec)) {
            (None, _, _) => String::new(),
            (Some(v), [], Some("dir")) => format!(":{}:_directories", zsh_text(v)),
            (Some(v), [], Some(_)) => format!(":{}:_files", zsh_text(v)),
            (Some(v), [], None) => format!(":{}: ", zsh_text(v)),
            (Some(v), choices, _) => format!(":{}:({})", zsh_text(v), choices.join(" ")),
        };
        let _ = writeln!(specs, "    '{repeat}{}[{help}]{value}' \\", spec.flag);
    }
    format!(
        "#compdef holdline\n# zsh completion for holdline (holdline completions zsh)\n\
         _arguments \\\n{specs}    '1::ROOT or command:_directories'\n"
    )
}

fn fish() -> String {
    let mut out = String::from(
        "# fish completion for holdline (holdline completions fish)\n\
         complete -c holdline -n __fish_use_subcommand -a 'check hash-password completions'\n\
         complete -c holdline -n '__fish_seen_subcommand_from completions' -a 'bash zsh fish'\n",
    );
    for spec in OPTIONS {
        let help = spec.help.replace('\\', "\\\\").replace('\'', "\\'");
        let long = &spec.flag[2..];
        let value = match (spec.value, spec.choices, path_kind(spec)) {
            (None, _, _) => String::new(),
            (Some(_), [], Some(_)) => " -r -F".to_string(),
            (Some(_), [], None) => " -r -f".to_string(),
            (Some(_), choices, _) => format!(" -r -f -a '{}'", choices.join(" ")),
        };
        let _ = writeln!(out, "complete -c holdline -l {long}{value} -d '{help}'");
    }
    out
}
