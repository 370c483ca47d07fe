//! A Jinja environment that renders chat templates the way Hugging Face's `apply_chat_template`
//! does, so a model's own `tokenizer.chat_template` produces the text the model was trained on.
//!
//! What it provides, matching Hugging Face's renderer:
//! - `trim_blocks` and `lstrip_blocks` on, `keep_trailing_newline` off, no autoescaping;
//! - loop controls (`{% break %}`, `{% continue %}`), `namespace()`, `loop.previtem` and friends;
//! - Python string and dict methods (`.strip()`, `.startswith()`, `.split()`, `.items()`,
//!   `.get()`, ...) through minijinja-contrib's pycompat, plus a few it lacks (`.rsplit()`,
//!   `.removeprefix()`, `.removesuffix()`);
//! - `raise_exception(message)`, which stops rendering with that message (see [`raised_message`]);
//! - `strftime_now(format)`, the local time in Python's `strftime` format (or a fixed time);
//! - the `tojson` filter with Python's `json.dumps` output (`", "`/`": "` separators, non-ASCII
//!   kept, `indent`, `separators`, `sort_keys`, `ensure_ascii` arguments);
//! - `length` (and `count`) of an undefined value is 0, as in Jinja;
//! - the `{% generation %}...{% endgeneration %}` block, which only marks assistant text for
//!   training masks and renders its body unchanged.

use chrono::format::{Item, StrftimeItems};
use chrono::NaiveDateTime;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, Value};
use std::fmt::Write as _;

/// The name the compiled template is stored under (no extension, so nothing is autoescaped).
pub(crate) const TEMPLATE_NAME: &str = "chat_template";

/// Prefix that marks an error raised by the template itself through `raise_exception`.
const RAISE_MARKER: &str = "\u{0}hearth-raise\u{0}";

/// Builds the environment and compiles `source` into it.
pub(crate) fn environment(source: &str) -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(python_methods);
    env.add_function("raise_exception", raise_exception);
    env.add_filter("tojson", tojson);
    env.add_filter("length", length);
    env.add_filter("count", length);
    set_clock(&mut env, None);
    env.add_template_owned(TEMPLATE_NAME, without_generation_tags(source))?;
    Ok(env)
}

/// Makes `strftime_now` use `fixed` instead of the local clock (`None`: the local clock).
pub(crate) fn set_clock(env: &mut Environment<'static>, fixed: Option<NaiveDateTime>) {
    env.add_function(
        "strftime_now",
        move |format: &str| -> Result<String, Error> {
            let now = fixed.unwrap_or_else(|| chrono::Local::now().naive_local());
            strftime(now, format)
        },
    );
}

/// The template's own message when `err` came from `raise_exception`.
pub(crate) fn raised_message(err: &Error) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(mj) = e.downcast_ref::<Error>() {
            if let Some(msg) = mj.detail().and_then(|d| d.strip_prefix(RAISE_MARKER)) {
                return Some(msg.to_string());
            }
        }
        current = e.source();
    }
    None
}

/// A human-readable description of a minijinja error, with its line in the template.
pub(crate) fn describe(err: &Error) -> String {
    let mut text = match err.detail() {
        Some(detail) => format!("{}: {}", err.kind(), detail),
        None => err.kind().to_string(),
    };
    if let Some(line) = err.line() {
        let _ = write!(text, " (template line {line})");
    }
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        let _ = write!(text, "; {inner}");
        source = inner.source();
    }
    text
}

fn raise_exception(message: Value) -> Result<Value, Error> {
    let message = match message.as_str() {
        Some(s) => s.to_string(),
        None => message.to_string(),
    };
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("{RAISE_MARKER}{message}"),
    ))
}

/// Jinja's `length`: an undefined value has length 0 (minijinja's own filter rejects it), so
/// `tools is not none and tools|length > 0` works when no tools are given.
fn length(value: &Value) -> Result<usize, Error> {
    if value.is_undefined() {
        return Ok(0);
    }
    minijinja::filters::length(value)
}

fn strftime(now: NaiveDateTime, format: &str) -> Result<String, Error> {
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: unsupported format {format:?}"),
        ));
    }
    let mut out = String::new();
    write!(out, "{}", now.format_with_items(items.into_iter())).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: cannot format the time with {format:?}"),
        )
    })?;
    Ok(out)
}

/// Python string methods that pycompat lacks, then pycompat's own.
fn python_methods(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        match (method, args) {
            ("rsplit", _) => return rsplit(s, args),
            ("removeprefix", [prefix]) => {
                let prefix = prefix.as_str().unwrap_or_default();
                return Ok(Value::from(s.strip_prefix(prefix).unwrap_or(s)));
            }
            ("removesuffix", [suffix]) => {
                let suffix = suffix.as_str().unwrap_or_default();
                return Ok(Value::from(s.strip_suffix(suffix).unwrap_or(s)));
            }
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// Python's `str.rsplit(sep=None, maxsplit=-1)`.
fn rsplit(s: &str, args: &[Value]) -> Result<Value, Error> {
    let sep = args.first().filter(|v| !v.is_none()).map(|v| v.to_string());
    let maxsplit = match args.get(1) {
        Some(v) => i64::try_from(v.clone())?,
        None => -1,
    };
    let mut parts: Vec<String> = match sep {
        Some(sep) if sep.is_empty() => {
            return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"))
        }
        Some(sep) => {
            if maxsplit < 0 {
                s.rsplit(sep.as_str()).map(str::to_string).collect()
            } else {
                s.rsplitn(maxsplit as usize + 1, sep.as_str())
                    .map(str::to_string)
                    .collect()
            }
        }
        None => {
            let words: Vec<&str> = s.split_whitespace().collect();
            if maxsplit < 0 || words.len() <= maxsplit as usize + 1 {
                words.iter().rev().map(|w| w.to_string()).collect()
            } else {
                // Keep the head (with its inner whitespace) as one piece, as Python does.
                let mut rest = s.trim_end();
                let mut out = Vec::new();
                for _ in 0..maxsplit {
                    let cut = rest.rfind(char::is_whitespace).unwrap_or(0);
                    out.push(rest[cut..].trim_start().to_string());
                    rest = rest[..cut].trim_end();
                }
                out.push(rest.to_string());
                out
            }
        }
    };
    parts.reverse();
    Ok(Value::from(parts))
}

/// Python's `json.dumps` as Hugging Face's `tojson` filter calls it:
/// `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let indent: Option<String> = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match v.kind() {
            ValueKind::String => Some(v.as_str().unwrap_or_default().to_string()),
            ValueKind::Bool => Some(" ".repeat(usize::from(v.is_true()))),
            _ => Some(" ".repeat(usize::try_from(v)?)),
        },
    };
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let (item_sep, key_sep) = match kwargs.get::<Option<Value>>("separators")? {
        Some(v) if !v.is_none() => {
            let item = v.get_item(&Value::from(0))?;
            let key = v.get_item(&Value::from(1))?;
            match (item.as_str(), key.as_str()) {
                (Some(i), Some(k)) => (i.to_string(), k.to_string()),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    ))
                }
            }
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    kwargs.assert_all_used()?;
    let style = JsonStyle {
        indent,
        item_sep,
        key_sep,
        ensure_ascii,
        sort_keys,
    };
    let mut out = String::new();
    style.write(&mut out, value, 0)?;
    Ok(out)
}

struct JsonStyle {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    ensure_ascii: bool,
    sort_keys: bool,
}

impl JsonStyle {
    fn write(&self, out: &mut String, value: &Value, level: usize) -> Result<(), Error> {
        match value.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => self.write_number(out, value),
            ValueKind::String | ValueKind::Bytes => {
                self.write_string(out, value.as_str().unwrap_or_default())
            }
            ValueKind::Map => {
                let mut entries = Vec::new();
                for key in value.try_iter()? {
                    let item = value.get_item(&key)?;
                    let key = match key.as_str() {
                        Some(s) => s.to_string(),
                        None if key.is_none() => "null".to_string(),
                        None => key.to_string(),
                    };
                    entries.push((key, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.write_container(out, '{', '}', &entries, level, |style, out, (k, v), lvl| {
                    style.write_string(out, k);
                    out.push_str(&style.key_sep);
                    style.write(out, v, lvl)
                })?;
            }
            _ => {
                let items: Vec<Value> = value.try_iter()?.collect();
                self.write_container(out, '[', ']', &items, level, |style, out, v, lvl| {
                    style.write(out, v, lvl)
                })?;
            }
        }
        Ok(())
    }

    fn write_container<T>(
        &self,
        out: &mut String,
        open: char,
        close: char,
        items: &[T],
        level: usize,
        write_item: impl Fn(&Self, &mut String, &T, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        out.push(open);
        if items.is_empty() {
            out.push(close);
            return Ok(());
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.item_sep);
            }
            if let Some(indent) = &self.indent {
                out.push('\n');
                out.push_str(&indent.repeat(level + 1));
            }
            write_item(self, out, item, level + 1)?;
        }
        if let Some(indent) = &self.indent {
            out.push('\n');
            out.push_str(&indent.repeat(level));
        }
        out.push(close);
        Ok(())
    }

    fn write_number(&self, out: &mut String, value: &Value) {
        if let Ok(i) = i64::try_from(value.clone()) {
            if value.as_i64().is_some() {
                let _ = write!(out, "{i}");
                return;
            }
        }
        match f64::try_from(value.clone()) {
            Ok(f) if f.is_nan() => out.push_str("NaN"),
            Ok(f) if f.is_infinite() => {
                out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Ok(f) if f.fract() == 0.0 && f.abs() < 1e16 => {
                let _ = write!(out, "{f:.1}");
            }
            Ok(f) => {
                let _ = write!(out, "{f}");
            }
            Err(_) => out.push_str(&value.to_string()),
        }
    }

    fn write_string(&self, out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c if self.ensure_ascii && !c.is_ascii() => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Replaces the `{% generation %}`/`{% endgeneration %}` tags (which Hugging Face uses only to
/// mask assistant tokens) with an always-true `if`, keeping their whitespace control markers.
fn without_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        match tag.find("%}") {
            Some(end) => {
                let inner = &tag[2..end];
                let (left, body) = split_marker_left(inner);
                let (body, right) = split_marker_right(body);
                match body.trim() {
                    "generation" => {
                        let _ = write!(out, "{{%{left} if true {right}%}}");
                    }
                    "endgeneration" => {
                        let _ = write!(out, "{{%{left} endif {right}%}}");
                    }
                    _ => out.push_str(&tag[..end + 2]),
                }
                rest = &tag[end + 2..];
            }
            None => {
                out.push_str(tag);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn split_marker_left(inner: &str) -> (&str, &str) {
    match inner.chars().next() {
        Some('-') | Some('+') => (&inner[..1], &inner[1..]),
        _ => ("", inner),
    }
}

fn split_marker_right(inner: &str) -> (&str, &str) {
    match inner.chars().last() {
        Some('-') | Some('+') => (&inner[..inner.len() - 1], &inner[inner.len() - 1..]),
        _ => (inner, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn render(source: &str, ctx: Value) -> Result<String, Error> {
        let env = environment(source)?;
        env.get_template(TEMPLATE_NAME)?.render(ctx)
    }

    #[test]
    fn tojson_writes_python_json_dumps_output() {
        let list = Value::from(vec![
            Value::from(1),
            Value::from(2.5),
            Value::from(true),
            Value::from(()),
        ]);
        let ctx = context! { x => context! { b => list, a => "héllo \"q\"\n" } };
        assert_eq!(
            render("{{ x | tojson }}", ctx.clone()).unwrap(),
            r#"{"b": [1, 2.5, true, null], "a": "héllo \"q\"\n"}"#
        );
        assert_eq!(
            render("{{ x | tojson(indent=2) }}", ctx.clone()).unwrap(),
            "{\n  \"b\": [\n    1,\n    2.5,\n    true,\n    null\n  ],\n  \"a\": \"héllo \\\"q\\\"\\n\"\n}"
        );
        assert_eq!(
            render("{{ x | tojson(4, sort_keys=true, separators=[',', ':']) }}", ctx.clone())
                .unwrap(),
            "{\n    \"a\":\"héllo \\\"q\\\"\\n\",\n    \"b\":[\n        1,\n        2.5,\n        true,\n        null\n    ]\n}"
        );
        assert_eq!(
            render("{{ x.a | tojson(ensure_ascii=true) }}", ctx).unwrap(),
            r#""h\u00e9llo \"q\"\n""#
        );
        assert_eq!(
            render("{{ {} | tojson }}{{ [] | tojson(indent=2) }}", context! {}).unwrap(),
            "{}[]"
        );
    }

    #[test]
    fn raise_exception_carries_the_templates_message() {
        let err = render("{{ raise_exception('Roles must alternate') }}", context! {}).unwrap_err();
        assert_eq!(
            raised_message(&err).as_deref(),
            Some("Roles must alternate")
        );
        let in_macro = render(
            "{% macro check(m) %}{% if m != 'user' %}{{ raise_exception('Only user roles: ' ~ m) }}{% endif %}{% endmacro %}{% for m in roles %}{{ check(m) }}{% endfor %}",
            context! { roles => vec!["user", "tool"] },
        )
        .unwrap_err();
        assert_eq!(
            raised_message(&in_macro).as_deref(),
            Some("Only user roles: tool")
        );
        let other = render("{{ nothing.attr }}", context! {}).unwrap_err();
        assert_eq!(raised_message(&other), None);
    }

    #[test]
    fn strftime_now_uses_python_format_codes() {
        let mut env =
            environment("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}")
                .unwrap();
        let fixed = chrono::NaiveDate::from_ymd_opt(2024, 7, 26)
            .unwrap()
            .and_hms_opt(9, 5, 0)
            .unwrap();
        set_clock(&mut env, Some(fixed));
        let out = env
            .get_template(TEMPLATE_NAME)
            .unwrap()
            .render(context! {})
            .unwrap();
        assert_eq!(out, "26 Jul 2024|2024-07-26 09:05");
    }

    #[test]
    fn blocks_are_trimmed_as_hugging_face_does() {
        let source =
            "{% for m in messages %}\n    {% if m %}\n[{{ m }}]\n    {% endif %}\n{% endfor %}\n";
        assert_eq!(
            render(source, context! { messages => vec!["a", "b"] }).unwrap(),
            "[a]\n[b]\n"
        );
        // keep_trailing_newline is off: one final newline of the source is dropped.
        assert_eq!(render("x\n", context! {}).unwrap(), "x");
    }

    #[test]
    fn python_methods_and_loop_controls_work() {
        let source = "{% for w in s.strip().split(' ') %}{% if w.startswith('b') %}{% continue %}{% endif %}{% if w == 'stop' %}{% break %}{% endif %}{{ w.upper() }},{% endfor %}|{{ s.strip().rsplit(' ', 1) | join('/') }}|{{ d.get('k', 'none') }}|{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}";
        let ctx = context! { s => "  apple banana cherry stop date ", d => context!{ a => 1 } };
        assert_eq!(
            render(source, ctx).unwrap(),
            "APPLE,CHERRY,|apple banana cherry stop/date|none|a=1"
        );
    }

    #[test]
    fn length_of_undefined_is_zero() {
        assert_eq!(
            render(
                "{{ tools|length }}{{ [1, 2]|count }}{{ 'abc'|length }}",
                context! {}
            )
            .unwrap(),
            "023"
        );
    }

    #[test]
    fn namespace_carries_values_out_of_loops() {
        let source = "{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}";
        assert_eq!(
            render(source, context! { xs => vec![1, 2, 3] }).unwrap(),
            "6"
        );
    }

    #[test]
    fn generation_blocks_render_their_body() {
        let source =
            "A{%- generation -%} B {%- endgeneration %}C{% generation %}D{% endgeneration %}";
        assert_eq!(render(source, context! {}).unwrap(), "ABCD");
    }

    #[test]
    fn python_rsplit_matches_python() {
        let check = |s: &str, args: &[Value], expected: &[&str]| {
            let got = rsplit(s, args).unwrap();
            let got: Vec<String> = got.try_iter().unwrap().map(|v| v.to_string()).collect();
            assert_eq!(got, expected, "rsplit({s:?}, {args:?})");
        };
        check("a,b,c", &[Value::from(",")], &["a", "b", "c"]);
        check("a,b,c", &[Value::from(","), Value::from(1)], &["a,b", "c"]);
        check("  a  b c ", &[], &["a", "b", "c"]);
        check(
            "  a  b c ",
            &[Value::from(()), Value::from(1)],
            &["  a  b", "c"],
        );
    }
}
