//! `docs/API-REFERENCE.md`: the API reference in Markdown, rendered from the OpenAPI
//! document, so the repository carries the whole reference and it cannot drift from the
//! server (`tests/it/openapi.rs` fails when the checked-in file differs).

use serde_json::Value;
use std::fmt::Write;

/// The type of a schema in a few words: `string`, `integer`, `[RoleView]`, `RoleView`, …
fn type_of(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(alts) = s[key].as_array() {
            let parts: Vec<String> = alts.iter().map(type_of).filter(|t| t != "null").collect();
            let sep = if key == "allOf" { " & " } else { " | " };
            return parts.join(sep);
        }
    }
    if let Some(values) = s["enum"].as_array() {
        return values
            .iter()
            .map(|v| {
                format!("`{}`", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            })
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let ty = match &s["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_string(),
    };
    match ty.as_str() {
        "array" => format!("[{}]", type_of(&s["items"])),
        "object" if s["additionalProperties"].is_object() && s["properties"].is_null() => {
            format!("map of {}", type_of(&s["additionalProperties"]))
        }
        "string" if s["format"].is_string() => {
            format!("string ({})", s["format"].as_str().unwrap_or(""))
        }
        _ => ty,
    }
}

/// One line of Markdown table text (no line breaks or bars).
fn cell(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// The fields of an object schema as a table.
fn fields(out: &mut String, schema: &Value) {
    let Some(props) = schema["properties"].as_object() else { return };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| field | type | required | description |\n|---|---|---|---|\n");
    for (name, p) in props {
        let desc = p["description"].as_str().unwrap_or("");
        let req = if required.contains(&name.as_str()) { "yes" } else { "" };
        let _ = writeln!(out, "| `{name}` | {} | {req} | {} |", cell(&type_of(p)), cell(desc));
    }
    out.push('\n');
}

/// The whole reference.
pub fn markdown() -> String {
    let doc = super::openapi::document();
    let mut out = String::from(
        "# API reference\n\nGenerated from the server's OpenAPI document (`GET /openapi.json`) by \
         `crates/edge-server/src/http/reference.rs`; a test keeps this file current. Every answer \
         that succeeded has `\"status\": \"success\"`; every failure is a `Failure` \
         (`status`, `error`, `message`, `details`). Permission bits: 1 Create, 2 Read, 4 Update, \
         8 Delete, 16 Execute. Conventions and decisions: [API.md](API.md).\n\n",
    );
    let mut tag = String::new();
    for o in super::openapi::operations() {
        if o.tag != tag {
            tag = o.tag.clone();
            let _ = writeln!(out, "## {tag}\n");
        }
        let op = &doc["paths"][&o.path][o.method.to_lowercase()];
        let _ = writeln!(out, "### `{} {}`\n\n{}\n", o.method, o.path, o.summary);
        if let Some(d) = op["description"].as_str() {
            let _ = writeln!(out, "{d}\n");
        }
        if let Some(ps) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
            out.push_str(
                "| parameter | in | type | required | description |\n|---|---|---|---|---|\n",
            );
            for p in ps {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} |",
                    p["name"].as_str().unwrap_or(""),
                    p["in"].as_str().unwrap_or(""),
                    cell(&type_of(&p["schema"])),
                    if p["required"] == true { "yes" } else { "" },
                    cell(p["description"].as_str().unwrap_or(""))
                );
            }
            out.push('\n');
        }
        if let Some(content) = op["requestBody"]["content"].as_object() {
            let kinds: Vec<String> = content
                .iter()
                .map(|(ct, c)| format!("{} (`{ct}`)", type_of(&c["schema"])))
                .collect();
            let _ = writeln!(out, "Body: {}.\n", kinds.join(", "));
        }
        for (status, r) in op["responses"].as_object().into_iter().flatten() {
            if status == "default" {
                continue;
            }
            let kinds: Vec<String> = r["content"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(ct, c)| format!("{} (`{ct}`)", type_of(&c["schema"])))
                .collect();
            let what = if kinds.is_empty() { "no body".to_string() } else { kinds.join(", ") };
            let _ = writeln!(out, "Answer {status}: {what}.\n");
        }
    }
    out.push_str("## Schemas\n\n");
    for (name, s) in doc["components"]["schemas"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "### {name}\n");
        if let Some(d) = s["description"].as_str() {
            let _ = writeln!(out, "{d}\n");
        }
        if s["properties"].is_object() {
            fields(&mut out, s);
        } else {
            let _ = writeln!(out, "Type: {}.\n", type_of(s));
        }
    }
    out
}
