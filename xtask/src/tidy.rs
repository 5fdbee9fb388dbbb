//! `cargo xtask tidy`: checks on the source tree itself that the compiler
//! and clippy cannot make, in the manner of rust-analyzer's tidy tests but
//! as a command:
//!
//! - no raw Apache/APR function call (`httpd::sys::ap_*(…)`,
//!   `sys::apr_*(…)`, `httpd_sys::…`) outside `crates/httpd` and
//!   `crates/httpd-sys`, whose job is to wrap them safely;
//! - every Rust file under `crates/`, `plugins/`, `bench/`, `xtask/` and
//!   `tests/` starts with a `//!` module doc;
//! - every repository path a README or `docs/*.md` names exists.
//!
//! Each check is a function of a file's text, unit-tested on synthetic
//! input below; [`cmd_tidy`] runs them on the real tree and lists every
//! offence.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::util::{check_args, root};

/// The crates allowed to call Apache and APR directly.
const RAW_CALLS_ALLOWED_IN: &[&str] = &["crates/httpd/", "crates/httpd-sys/"];

/// Where every Rust file must have a module doc.
const DOCUMENTED_ROOTS: &[&str] = &["crates", "plugins", "bench", "xtask", "tests"];

/// Directories never looked into: build output (cargo's, and the fuzz
/// crate's own `target/`) and version control.
const SKIPPED_DIRS: &[&str] = &["target", ".git"];

/// File name endings that make a backticked word look like a file.
const FILE_EXTENSIONS: &[&str] = &[
    "rs", "md", "toml", "c", "h", "json", "sh", "html", "conf", "in", "load", "wxs", "rtf", "lock", "txt",
    "yml", "yaml", "py",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    RawCall,
    ModuleDoc,
    DocPath,
}

impl Check {
    fn heading(self) -> &'static str {
        match self {
            Check::RawCall => {
                "raw Apache/APR function calls outside crates/httpd and crates/httpd-sys \
                 (call the httpd crate's safe API instead; add a wrapper there if it has none)"
            }
            Check::ModuleDoc => "Rust files without a `//!` module doc at the top",
            Check::DocPath => "repository paths named in the docs that do not exist",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Offence {
    check: Check,
    /// Repository-relative, with `/` separators.
    file: String,
    line: usize,
    what: String,
}

pub fn cmd_tidy(args: &[String]) -> Result<(), String> {
    check_args(args, &[], &[])?;
    let root = root();
    let (offences, counts) = check_tree(&root)?;
    if offences.is_empty() {
        eprintln!(
            "xtask: tidy: {} Rust files and {} docs are tidy",
            counts.0, counts.1
        );
        return Ok(());
    }
    print!("{}", report(&offences));
    Err(format!(
        "tidy: {} offence(s) in {} file(s)",
        offences.len(),
        offences
            .iter()
            .map(|o| o.file.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    ))
}

/// Every offence in the tree at `root`, and how many (Rust files, docs)
/// were looked at.
fn check_tree(root: &Path) -> Result<(Vec<Offence>, (usize, usize)), String> {
    let files = walk(root)?;
    let top_level = top_level_names(root)?;
    let mut offences = Vec::new();
    let (mut rust, mut docs) = (0, 0);
    for rel in &files {
        let is_rust = rel.ends_with(".rs");
        let is_doc = is_checked_doc(rel);
        if !is_rust && !is_doc {
            continue;
        }
        let path = root.join(rel);
        let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if is_rust {
            rust += 1;
            if !RAW_CALLS_ALLOWED_IN.iter().any(|p| rel.starts_with(p)) {
                for (line, what) in raw_calls(&text) {
                    offences.push(Offence {
                        check: Check::RawCall,
                        file: rel.clone(),
                        line,
                        what,
                    });
                }
            }
            let documented_root = DOCUMENTED_ROOTS.iter().any(|d| rel.starts_with(&format!("{d}/")));
            if documented_root && needs_module_doc(&text) && !has_module_doc(&text) {
                offences.push(Offence {
                    check: Check::ModuleDoc,
                    file: rel.clone(),
                    line: 1,
                    what: "starts without a `//!` doc saying what the file is for".into(),
                });
            }
        }
        if is_doc {
            docs += 1;
            let exists = |p: &str| root.join(p).exists();
            for (line, target) in missing_doc_paths(rel, &text, &top_level, &exists) {
                offences.push(Offence {
                    check: Check::DocPath,
                    file: rel.clone(),
                    line,
                    what: format!("`{target}` does not exist"),
                });
            }
        }
    }
    offences.sort();
    Ok((offences, (rust, docs)))
}

/// The offences grouped by check, each group with a per-file count when
/// it spans several files.
fn report(offences: &[Offence]) -> String {
    let mut out = String::new();
    let checks: BTreeSet<Check> = offences.iter().map(|o| o.check).collect();
    for check in checks {
        let mine: Vec<&Offence> = offences.iter().filter(|o| o.check == check).collect();
        let _ = writeln!(out, "{} ({}):", check.heading(), mine.len());
        for o in &mine {
            let _ = writeln!(out, "  {}:{}: {}", o.file, o.line, o.what);
        }
        let files: BTreeSet<&str> = mine.iter().map(|o| o.file.as_str()).collect();
        if files.len() > 1 {
            let _ = writeln!(out, "  by file:");
            for f in files {
                let n = mine.iter().filter(|o| o.file == f).count();
                let _ = writeln!(out, "    {n:4}  {f}");
            }
        }
        out.push('\n');
    }
    out
}

/// Every file under `root`, repository-relative with `/` separators,
/// sorted; build output, version control and hidden directories skipped.
fn walk(root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry
                .file_type()
                .map_err(|e| format!("cannot stat {}: {e}", entry.path().display()))?;
            let child = rel.join(&name);
            if kind.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_str()) && !name.starts_with('.') {
                    stack.push(child);
                }
            } else if kind.is_file() {
                out.push(slashed(&child));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn slashed(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The names at the top of the repository a doc path may start with
/// (not build output or version control).
fn top_level_names(root: &Path) -> Result<BTreeSet<String>, String> {
    let entries = fs::read_dir(root).map_err(|e| format!("cannot list {}: {e}", root.display()))?;
    Ok(entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !SKIPPED_DIRS.contains(&n.as_str()))
        .collect())
}

/// READMEs anywhere (`README.md`, `README-windows.md`) and the pages
/// under `docs/`.
fn is_checked_doc(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    (name.starts_with("README") && name.ends_with(".md"))
        || (rel.starts_with("docs/") && rel.ends_with(".md"))
}

// ---------------------------------------------------------------------------
// Rust source: comments and literals out of the way, then tokens.

/// `src` with the insides of comments and string, byte-string and char
/// literals replaced by spaces (line breaks kept), so that what remains
/// is code and line numbers still match.
fn blank_comments_and_literals(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (i == 0
                || !is_ident(chars[i - 1])
                || (matches!(chars[i - 1], 'b' | 'c') && (i < 2 || !is_ident(chars[i - 2]))))
            && raw_string_hashes(&chars[i + 1..]).is_some()
        {
            let hashes = raw_string_hashes(&chars[i + 1..]).unwrap_or(0);
            // r, the hashes and the opening quote stay.
            for &k in &chars[i..i + hashes + 2] {
                out.push(k);
            }
            i += hashes + 2;
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while i < chars.len() && !chars[i..].starts_with(&close) {
                blank(&mut out, chars[i]);
                i += 1;
            }
            for _ in 0..close.len().min(chars.len() - i) {
                out.push(chars[i]);
                i += 1;
            }
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
            if i < chars.len() {
                out.push('"');
                i += 1;
            }
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime or
            // label ('a, 'static), which has no closing quote.
            let len = match next {
                // The escaped character may itself be a quote ('\'').
                Some('\\') => chars
                    .get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&k| k == '\''))
                    .map(|p| p + 4),
                Some(_) if chars.get(i + 2) == Some(&'\'') => Some(3),
                _ => None,
            };
            match len {
                Some(len) => {
                    out.push('\'');
                    for &k in &chars[i + 1..i + len - 1] {
                        blank(&mut out, k);
                    }
                    out.push('\'');
                    i += len;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// After an `r`: `Some(number of #)` if a raw string starts here.
fn raw_string_hashes(rest: &[char]) -> Option<usize> {
    let hashes = rest.iter().take_while(|&&c| c == '#').count();
    (rest.get(hashes) == Some(&'"')).then_some(hashes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Identifiers, `::` and single punctuation, each with its line, from
/// code whose comments and literals are blanked.
fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), line));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// An Apache or APR function's name as bindgen gives it.
fn is_raw_name(name: &str) -> bool {
    name.starts_with("ap_") || name.starts_with("apr_")
}

/// The module paths that hold the raw bindings.
fn is_sys_segment(name: &str) -> bool {
    name == "sys" || name == "httpd_sys"
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// Whether the tokens from `i` on are a call's opening parenthesis,
/// possibly after a turbofish (`::<T>(`).
fn is_call_at(toks: &[(Tok, usize)], mut i: usize) -> bool {
    if toks.get(i).map(|t| &t.0) == Some(&Tok::PathSep)
        && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Punct('<'))
    {
        let mut depth = 0;
        i += 1;
        while let Some((t, _)) = toks.get(i) {
            match t {
                Tok::Punct('<') => depth += 1,
                Tok::Punct('>') => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    toks.get(i).map(|t| &t.0) == Some(&Tok::Punct('('))
}

/// Raw Apache/APR calls in a Rust file: (line, what), for
/// - a qualified call, `httpd::sys::ap_hook_handler(…)`,
///   `sys::apr_table_get(…)`, `httpd_sys::ap_rputs(…)`;
/// - a bare call of a function imported from such a module
///   (`use httpd::sys::{apr_table_get as get};` … `get(…)`, or any
///   `ap_*`/`apr_*` call after `use httpd::sys::*;`).
///
/// Types (`sys::apr_pool_t`), constants (`sys::APR_SUCCESS`) and a
/// function named without being called (a hook passed as a value) are not
/// calls.
fn raw_calls(src: &str) -> Vec<(usize, String)> {
    let toks = tokens(&blank_comments_and_literals(src));
    let mut found = Vec::new();
    // Names brought in by `use …sys::…`; `glob` for `use …sys::*`.
    let mut imported: Vec<(String, String)> = Vec::new();
    let mut glob = false;
    let mut in_use = vec![false; toks.len()];
    let mut i = 0;
    while i < toks.len() {
        if ident(toks.get(i)) == Some("use") {
            let end = (i..toks.len())
                .find(|&k| toks[k].0 == Tok::Punct(';'))
                .unwrap_or(toks.len());
            in_use[i..end].iter_mut().for_each(|u| *u = true);
            let stmt = &toks[i..end];
            if let Some(sys_at) = (0..stmt.len()).find(|&k| {
                ident(stmt.get(k)).is_some_and(is_sys_segment)
                    && stmt.get(k + 1).map(|t| &t.0) == Some(&Tok::PathSep)
            }) {
                for k in sys_at..stmt.len() {
                    match &stmt[k].0 {
                        Tok::Ident(name) if is_raw_name(name) => {
                            let local = if ident(stmt.get(k + 1)) == Some("as") {
                                ident(stmt.get(k + 2)).unwrap_or(name).to_owned()
                            } else {
                                name.clone()
                            };
                            imported.push((local, name.clone()));
                        }
                        Tok::Punct('*') => glob = true,
                        _ => {}
                    }
                }
            }
            i = end;
            continue;
        }
        i += 1;
    }
    for (k, (tok, line)) in toks.iter().enumerate() {
        let Tok::Ident(name) = tok else { continue };
        if in_use[k] || !is_call_at(&toks, k + 1) {
            continue;
        }
        let after_sep = k >= 1 && toks[k - 1].0 == Tok::PathSep;
        if after_sep {
            if is_raw_name(name)
                && ident(k.checked_sub(2).and_then(|p| toks.get(p))).is_some_and(is_sys_segment)
            {
                // The whole path, for the message.
                let mut start = k;
                while start >= 2 && toks[start - 1].0 == Tok::PathSep && ident(toks.get(start - 2)).is_some()
                {
                    start -= 2;
                }
                let path: Vec<&str> = (start..=k)
                    .step_by(2)
                    .filter_map(|p| ident(toks.get(p)))
                    .collect();
                found.push((*line, format!("{}(…)", path.join("::"))));
            }
            continue;
        }
        // A definition or a method is not a call of the import.
        let prev = k.checked_sub(1).and_then(|p| toks.get(p)).map(|t| &t.0);
        if ident(k.checked_sub(1).and_then(|p| toks.get(p))) == Some("fn") || prev == Some(&Tok::Punct('.')) {
            continue;
        }
        if let Some((_, original)) = imported.iter().find(|(local, _)| local == name) {
            found.push((
                *line,
                format!("{name}(…), imported from the raw bindings as {original}"),
            ));
        } else if glob && is_raw_name(name) {
            found.push((
                *line,
                format!("{name}(…), from a glob import of the raw bindings"),
            ));
        }
    }
    found
}

/// Files that need no module doc: bindgen's output (generated, and only
/// ever included from a documented module).
fn needs_module_doc(src: &str) -> bool {
    !src.lines()
        .next()
        .is_some_and(|l| l.contains("automatically generated by rust-bindgen") || l.contains("@generated"))
}

/// Whether the first line that is not blank is an inner doc comment.
fn has_module_doc(src: &str) -> bool {
    src.lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.starts_with("//!") || l.starts_with("/*!"))
}

// ---------------------------------------------------------------------------
// Docs: paths in code spans and links.

/// Paths a doc names that do not exist: (line, path). `doc` is the doc's
/// repository-relative path, `top_level` the names at the repository's
/// top, `exists` answers for a repository-relative path.
///
/// Looked at: inline code spans that are one word, and link targets
/// (`[text](target)`, `[label]: target`). Not looked at: fenced code
/// blocks (commands and configuration, whose relative paths are relative
/// to a server root or a stage, not the repository) and code spans of
/// several words (`Include conf/extra/httpd-websocket.conf` is Apache's
/// path, not ours).
///
/// A code span counts as a repository path when it contains a `/` or ends
/// with a known extension, and its first component is at the repository's
/// top or it starts with `./`; URLs, absolute and home paths, variables
/// and globs never count. A link target is relative to the doc's
/// directory, as the forges read it, and counts unless it is a URL, an
/// anchor, absolute, or leaves the repository.
fn missing_doc_paths(
    doc: &str,
    text: &str,
    top_level: &BTreeSet<String>,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<(usize, String)> {
    let doc_dir = doc.rsplit_once('/').map_or("", |(d, _)| d);
    let mut found = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let trimmed = line.trim_start();
        let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        if let Some(c) = fence_char {
            let run = trimmed.chars().take_while(|&k| k == c).count();
            if run >= 3 {
                match fence {
                    None => fence = Some((c, run)),
                    Some((open, len)) if open == c && run >= len && trimmed[run..].trim().is_empty() => {
                        fence = None
                    }
                    Some(_) => {}
                }
                continue;
            }
        }
        if fence.is_some() {
            continue;
        }
        for span in code_spans(line) {
            let word = span.trim();
            if word.is_empty() || word.contains(char::is_whitespace) {
                continue;
            }
            let Some(path) = repo_path_candidate(word, top_level) else {
                continue;
            };
            let from_root = path.trim_start_matches("./");
            let from_doc = join_within(doc_dir, from_root);
            if !exists(from_root) && !from_doc.as_deref().is_some_and(exists) {
                found.push((n, path.to_owned()));
            }
        }
        for target in link_targets(line) {
            if let Some(resolved) = link_path(doc_dir, &target) {
                if !exists(&resolved) {
                    found.push((n, target));
                }
            }
        }
    }
    found
}

/// The contents of the inline code spans on a line (a run of N backticks
/// up to the next run of exactly N).
fn code_spans(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|&&b| b == b'`').count();
        let start = i + run;
        let mut j = start;
        let mut closed = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let r = bytes[j..].iter().take_while(|&&b| b == b'`').count();
                if r == run {
                    closed = Some(j);
                    break;
                }
                j += r;
            } else {
                j += 1;
            }
        }
        match closed {
            Some(end) => {
                spans.push(&line[start..end]);
                i = end + run;
            }
            None => i = start,
        }
    }
    spans
}

/// The word as a repository path, if it looks like one (see
/// [`missing_doc_paths`]); trailing punctuation and a `:line` suffix are
/// dropped.
fn repo_path_candidate<'a>(word: &'a str, top_level: &BTreeSet<String>) -> Option<&'a str> {
    let mut w = word.trim_end_matches([',', ';', '.', ')']).trim_end_matches('/');
    // `file.rs:123` and `file.rs:12-30` name lines of the file.
    if let Some((path, lines)) = w.rsplit_once(':') {
        if !lines.is_empty() && lines.chars().all(|c| c.is_ascii_digit() || c == '-') {
            w = path;
        }
    }
    if w.is_empty()
        || w.contains("://")
        || w.starts_with(['/', '~', '$', '-', '\\'])
        || w.contains([
            '*', '?', '[', ']', '{', '}', '<', '>', '=', '$', '\\', '@', '"', '\'', '`',
        ])
    {
        return None;
    }
    let looks_like_file = w.contains('/')
        || w.rsplit_once('.')
            .is_some_and(|(stem, ext)| !stem.is_empty() && FILE_EXTENSIONS.contains(&ext));
    if !looks_like_file {
        return None;
    }
    let first = w.trim_start_matches("./").split('/').next().unwrap_or("");
    (w.starts_with("./") || top_level.contains(first)).then_some(w)
}

/// `[text](target)` and `[label]: target` targets on a line.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let target = if let Some(inner) = after.strip_prefix('<') {
            inner.split('>').next().unwrap_or("")
        } else {
            after.split([')', ' ', '\t']).next().unwrap_or("")
        };
        out.push(target.to_owned());
        rest = after;
    }
    let t = line.trim_start();
    if t.starts_with('[') {
        if let Some((label, target)) = t.split_once("]:") {
            if !label.contains("](") {
                if let Some(target) = target.split_whitespace().next() {
                    out.push(target.trim_matches(['<', '>']).to_owned());
                }
            }
        }
    }
    out
}

/// A link target as a repository-relative path, or `None` when it is not
/// a path in the repository (URL, anchor, absolute, outside).
fn link_path(doc_dir: &str, target: &str) -> Option<String> {
    let path = target.split(['#', '?']).next().unwrap_or("");
    if path.is_empty() || path.contains(':') || path.starts_with('/') {
        return None;
    }
    join_within(doc_dir, &path.replace("%20", " "))
}

/// `dir/rel` normalized, or `None` if `..` leaves the repository.
fn join_within(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(dir).join(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(found: Vec<(usize, String)>) -> Vec<usize> {
        found.into_iter().map(|(l, _)| l).collect()
    }

    #[test]
    fn qualified_raw_calls_are_found() {
        let src = "\
use httpd::sys;
fn f(r: *mut sys::request_rec, p: *mut sys::apr_pool_t) {
    unsafe { sys::ap_rputs(c\"hi\".as_ptr(), r) };
    let t = unsafe { httpd::sys::apr_table_get((*r).headers_in, k) };
    httpd_sys::ap_set_content_type (r, ct);
    let ok = status == sys::APR_SUCCESS as sys::apr_status_t;
    crate::sys::apr_palloc::<u8>(p, 8);
}
";
        let found = raw_calls(src);
        assert_eq!(lines(found.clone()), vec![3, 4, 5, 7], "{found:?}");
        assert_eq!(found[1].1, "httpd::sys::apr_table_get(…)");
        assert_eq!(found[2].1, "httpd_sys::ap_set_content_type(…)");
    }

    #[test]
    fn types_constants_values_comments_and_strings_are_not_calls() {
        let src = r##"
//! Calls sys::ap_rputs(…) through the wrapper.
/* a block /* nested sys::ap_x() */ still comment sys::apr_y() */
type Hook = unsafe extern "C" fn(*mut sys::conn_rec, sys::apr_off_t);
const S: &str = "sys::ap_rputs(r)";
const R: &str = r#"httpd::sys::apr_table_get(t, k)"#;
const C: char = '(';
fn g<'a>(x: &'a str) -> &'a str { x }
fn register() {
    // sys::ap_hook_handler(h, null, null, 0);
    hooks.push(sys::ap_hook_handler);
    let v = sys::apr_bucket_brigade { p };
    wrapper::ap_like_name(1);
    my_sys::ap_rputs(2);
}
"##;
        assert_eq!(raw_calls(src), Vec::<(usize, String)>::new());
    }

    #[test]
    fn calls_of_imported_raw_functions_are_found() {
        let src = "\
use httpd::sys::{apr_table_get as get, apr_pool_t, ap_rputs};
fn f() {
    get(t, k);
    ap_rputs(s, r);
    x.ap_rputs(s);
}
fn ap_rputs(s: u8) {}
";
        let found = raw_calls(src);
        assert_eq!(lines(found.clone()), vec![3, 4], "{found:?}");
        assert!(found[0].1.contains("apr_table_get"), "{found:?}");

        let glob = "use httpd::sys::*;\nfn f() { ap_get_module_config(c, m); apr_pool_t_size(); }\n";
        assert_eq!(lines(raw_calls(glob)), vec![2, 2]);
        let none = "use std::io::*;\nfn f() { ap_not_from_sys(1); }\n";
        assert!(raw_calls(none).is_empty());
    }

    #[test]
    fn the_blanking_keeps_lines_and_code() {
        let src = "let a = \"x\\\"y\n z\"; // c\nlet b = b'\\'' as u8; 'outer: loop {}\n";
        let out = blank_comments_and_literals(src);
        assert_eq!(out.lines().count(), src.lines().count());
        assert!(
            out.contains("let b =") && out.contains("'outer: loop {}"),
            "{out}"
        );
        assert!(!out.contains('x') && !out.contains(" c"), "{out}");
    }

    #[test]
    fn module_docs() {
        assert!(has_module_doc("//! What this is.\nfn f() {}\n"));
        assert!(has_module_doc("\n/*! Block doc. */\n"));
        assert!(!has_module_doc("// A plain comment.\nfn main() {}\n"));
        assert!(!has_module_doc("use std::io;\n//! too late\n"));
        assert!(!has_module_doc(""));
        assert!(!has_module_doc("/// An item doc, not the module's.\nfn f() {}\n"));
        assert!(!needs_module_doc(
            "/* automatically generated by rust-bindgen 0.72.0 */\n"
        ));
        assert!(needs_module_doc("fn main() {}\n"));
    }

    fn top() -> BTreeSet<String> {
        ["crates", "docs", "tests", "README.md", "Cargo.toml", "conf"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn check_doc(doc: &str, text: &str) -> Vec<(usize, String)> {
        let existing = [
            "crates/foo/src/bar.rs",
            "crates/foo",
            "docs/x.md",
            "docs/y.md",
            "tests/tests/tls.rs",
            "README.md",
            "Cargo.toml",
        ];
        missing_doc_paths(doc, text, &top(), &|p: &str| existing.contains(&p))
    }

    #[test]
    fn doc_paths_that_exist_pass() {
        let text = "\
See `crates/foo/src/bar.rs`, `crates/foo/`, `tests/tests/tls.rs:12`, `Cargo.toml` and
[the other page](docs/x.md#section), [top](#top), [`crates/foo`](crates/foo).
[ref]: docs/y.md
";
        assert_eq!(check_doc("README.md", text), vec![]);
        assert_eq!(
            check_doc("docs/x.md", "[sibling](y.md), [up](../README.md)\n"),
            vec![]
        );
    }

    #[test]
    fn doc_paths_that_do_not_exist_are_found() {
        let text = "\
Read `crates/foo/src/gone.rs` and `docs/missing.md`.
Then [this](docs/nope.md) and `./crates/old`.
[ref]: tests/tests/removed.rs
";
        let found = check_doc("README.md", text);
        let paths: Vec<&str> = found.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "crates/foo/src/gone.rs",
                "docs/missing.md",
                "./crates/old",
                "docs/nope.md",
                "tests/tests/removed.rs"
            ]
        );
        assert_eq!(lines(found), vec![1, 1, 2, 2, 3]);
        assert_eq!(check_doc("docs/x.md", "[gone](z.md)\n"), vec![(1, "z.md".into())]);
    }

    #[test]
    fn things_that_are_not_repository_paths_are_left_alone() {
        let text = "\
`https://example.org/crates/x.rs` [site](https://example.org/docs/q.md) [mail](mailto:a@b)
`/etc/apache2/mods-available/websocket.load` `~/crates/x` `$PREFIX/crates/x` `crates/*/src/lib.rs`
`target/apache/modules/mod_websocket.so` `modules/mod_websocket.so` `lib.rs` `a/b` `mod_websocket`
`Include conf/extra/httpd-websocket.conf` `crates/{a,b}` `--manifest-path=crates/x/Cargo.toml`
[outside](../../elsewhere.md) [abs](/docs/abs.md)
```sh
cat crates/not/there.rs `crates/nor/this.rs`
```
~~~
`docs/absent.md`
~~~
";
        assert_eq!(check_doc("README.md", text), vec![]);
    }

    #[test]
    fn code_spans_and_links_are_parsed() {
        assert_eq!(code_spans("a `b` c ``d ` e`` `f"), vec!["b", "d ` e"]);
        assert_eq!(
            link_targets("[a](x.md) and [b](<y z.md>) [c](w.md \"title\")"),
            vec!["x.md", "y z.md", "w.md"]
        );
        assert_eq!(link_targets("  [id]: docs/x.md \"t\""), vec!["docs/x.md"]);
        assert_eq!(join_within("docs", "../README.md").as_deref(), Some("README.md"));
        assert_eq!(join_within("", "../x"), None);
    }

    #[test]
    fn the_report_lists_and_counts() {
        let o = |file: &str, line| Offence {
            check: Check::RawCall,
            file: file.into(),
            line,
            what: "sys::ap_x(…)".into(),
        };
        let text = report(&[o("a.rs", 1), o("a.rs", 2), o("b.rs", 3)]);
        assert!(text.contains("(3):\n  a.rs:1: sys::ap_x(…)\n"), "{text}");
        assert!(text.contains("       2  a.rs\n       1  b.rs\n"), "{text}");
    }
}
