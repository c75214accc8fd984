//! JSON Schema → GBNF: grammars that make a model's output JSON, for the OpenAI API's
//! `response_format` (`json_object`, `json_schema`).
//!
//! The common subset of JSON Schema is enforced: `type` (one or a list of `object`, `array`,
//! `string`, `number`, `integer`, `boolean`, `null`), `properties`, `required`,
//! `additionalProperties` (`true` or `false`: no property outside `properties` is generated
//! either way), `items` (a schema, or a list of them: a tuple, as draft 4 spells it and as
//! `prefixItems` does, generated with exactly those items as llama.cpp's converter does),
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `enum` and `const`.
//! Annotations (`title`, `description`, `$schema`, `$id`, `$comment`, `default`, `examples`,
//! `deprecated`, `readOnly`, `writeOnly`) are ignored. Any other keyword (`pattern`,
//! `format`, `anyOf`, `$ref`, `minimum`, ...) is refused, each named with where it is, rather
//! than silently not enforced.
//!
//! Properties are generated in the schema's order, the required ones always, the others
//! when the model chooses to. Whitespace between tokens is bounded and numbers have at most
//! 16 digits per part, so that a small model cannot loop inside a number or between two
//! tokens until its token budget runs out.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Rules every grammar shares: `value` is any JSON value, `object` any JSON object.
const BASE: &str = r#"
ws ::= [ \t\n]{0,16}
string ::= "\"" char* "\""
char ::= [^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
int ::= "0" | [1-9] [0-9]{0,15}
integer ::= "-"? int
number ::= "-"? int ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" ws ( member ( ws "," ws member )* )? ws "}"
member ::= string ws ":" ws value
array ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
"#;

/// Keywords that describe and constrain nothing.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$schema",
    "$id",
    "$comment",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords this module enforces.
const ENFORCED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "enum",
    "const",
];

/// Deepest nesting of schemas.
const MAX_DEPTH: usize = 32;
/// Most rules in one grammar (a property, an array or an enum makes one or two).
const MAX_RULES: usize = 2000;
/// Largest `maxItems`/`maxLength`/`minItems`/`minLength` (llama.cpp expands a bounded
/// repetition into one rule per step).
const MAX_REPEAT: u64 = 1000;

/// Why a schema has no grammar.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    /// Keywords outside the supported subset, as `keyword (at /json/pointer)`.
    #[error("unsupported JSON Schema keywords: {}; supported: {}", .0.join(", "), ENFORCED.join(", "))]
    Unsupported(Vec<String>),
    /// A supported keyword with a value it cannot have.
    #[error("invalid JSON Schema at {at}: {reason}")]
    Invalid {
        /// JSON pointer of the schema.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// Nested deeper or larger than a grammar should be.
    #[error("the JSON Schema is too large: at most {MAX_DEPTH} levels of nesting and {MAX_RULES} grammar rules")]
    TooLarge,
}

/// The grammar of any JSON object (`response_format` `json_object`).
pub fn json_object() -> String {
    format!("root ::= object\n{BASE}")
}

/// The grammar of the JSON values valid against `schema`, root rule `root`.
///
/// # Errors
///
/// [`SchemaError`]: unsupported keywords (all of them, each with its place), an invalid
/// value for a supported one, or a schema too large.
pub fn from_schema(schema: &Value) -> Result<String, SchemaError> {
    let mut g = Generator::default();
    let root = g.schema(schema, "", 0)?;
    if !g.unsupported.is_empty() {
        return Err(SchemaError::Unsupported(g.unsupported));
    }
    let mut out = format!("root ::= {root}\n");
    for (i, body) in g.rules.iter().enumerate() {
        let _ = writeln!(out, "r{i} ::= {body}");
    }
    out.push_str(BASE);
    Ok(out)
}

#[derive(Default)]
struct Generator {
    rules: Vec<String>,
    unsupported: Vec<String>,
}

impl Generator {
    /// Adds a rule; returns its name.
    fn rule(&mut self, body: String) -> Result<String, SchemaError> {
        if self.rules.len() >= MAX_RULES {
            return Err(SchemaError::TooLarge);
        }
        self.rules.push(body);
        Ok(format!("r{}", self.rules.len() - 1))
    }

    /// A GBNF expression for the values valid against the schema at `at`.
    fn schema(&mut self, schema: &Value, at: &str, depth: usize) -> Result<String, SchemaError> {
        if depth > MAX_DEPTH {
            return Err(SchemaError::TooLarge);
        }
        let obj = match schema {
            Value::Bool(true) => return Ok("value".into()),
            Value::Object(obj) => obj,
            _ => return Err(invalid(at, "a schema is an object or true")),
        };
        for key in obj.keys() {
            if !ENFORCED.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
                self.unsupported.push(format!("{key} (at {})", pointer(at)));
            }
        }
        if let Some(additional) = obj.get("additionalProperties") {
            if !additional.is_boolean() {
                self.unsupported.push(format!(
                    "additionalProperties as a schema (at {})",
                    pointer(at)
                ));
            }
        }
        if let Some(value) = obj.get("const") {
            return Ok(json_literal(value));
        }
        if let Some(values) = obj.get("enum") {
            let values = values
                .as_array()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(at, "enum is a non-empty array"))?;
            let body = values
                .iter()
                .map(json_literal)
                .collect::<Vec<_>>()
                .join(" | ");
            return self.rule(body);
        }
        let types: Vec<&str> = match obj.get("type") {
            None if obj.contains_key("properties") || obj.contains_key("required") => {
                vec!["object"]
            }
            None if obj.contains_key("items") || obj.contains_key("prefixItems") => {
                vec!["array"]
            }
            None => return Ok("value".into()),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(|t| {
                    t.as_str()
                        .ok_or_else(|| invalid(at, "type lists type names"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid(at, "type is a type name or a list of them")),
        };
        let mut alternatives = Vec::with_capacity(types.len());
        for t in types {
            alternatives.push(match t {
                "object" => self.object(obj, at, depth)?,
                "array" => self.array(obj, at, depth)?,
                "string" => self.string(obj, at)?,
                "number" | "integer" | "boolean" | "null" => t.to_string(),
                other => return Err(invalid(at, &format!("unknown type {other:?}"))),
            });
        }
        Ok(if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            self.rule(alternatives.join(" | "))?
        })
    }

    fn object(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        let empty = Map::new();
        let properties = match obj.get("properties") {
            None => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return Err(invalid(at, "properties is an object")),
        };
        let required: Vec<&str> = match obj.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => r
                .iter()
                .map(|name| {
                    name.as_str()
                        .ok_or_else(|| invalid(at, "required lists property names"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid(at, "required is an array of property names")),
        };
        if properties.is_empty() && required.is_empty() {
            return Ok("object".into());
        }
        // (member expression, required) in the schema's order; required names without a
        // schema of their own take any value.
        let any = Value::Bool(true);
        let mut members = Vec::new();
        let named = properties.iter().map(|(k, v)| (k.as_str(), v)).chain(
            required
                .iter()
                .filter(|name| !properties.contains_key(**name))
                .map(|name| (*name, &any)),
        );
        for (name, schema) in named {
            let here = format!("{at}/properties/{}", escape_pointer(name));
            let value = self.schema(schema, &here, depth + 1)?;
            let key = json_literal(&Value::String(name.to_string()));
            let member = self.rule(format!("{key} ws \":\" ws {value}"))?;
            members.push((member, required.contains(&name)));
        }
        // rest[i]: members i.. after one was written (each behind a comma);
        // first[i]: members i.. when none was written yet (never empty).
        let n = members.len();
        let mut rest = vec![String::new(); n + 1];
        for i in (0..n).rev() {
            let (member, req) = &members[i];
            let item = if *req {
                format!("ws \",\" ws {member}")
            } else {
                format!("( ws \",\" ws {member} )?")
            };
            rest[i] = if rest[i + 1].is_empty() {
                self.rule(item)?
            } else {
                self.rule(format!("{item} {}", rest[i + 1]))?
            };
        }
        let mut first = String::new();
        let mut nullable = true;
        for i in (0..n).rev() {
            let (member, req) = &members[i];
            let with = if i + 1 < n {
                format!("{member} {}", rest[i + 1])
            } else {
                member.clone()
            };
            first = if *req || first.is_empty() {
                self.rule(with)?
            } else {
                self.rule(format!("{with} | {first}"))?
            };
            nullable &= !*req;
        }
        let body = if nullable {
            format!("\"{{\" ws ( {first} )? ws \"}}\"")
        } else {
            format!("\"{{\" ws {first} ws \"}}\"")
        };
        self.rule(body)
    }

    fn array(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        // A tuple: exactly these items, in order.
        let tuple = match (obj.get("prefixItems"), obj.get("items")) {
            (Some(Value::Array(list)), _) => Some((list, "prefixItems")),
            (None, Some(Value::Array(list))) => Some((list, "items")),
            (Some(_), _) => return Err(invalid(at, "prefixItems is a list of schemas")),
            _ => None,
        };
        if let Some((list, key)) = tuple {
            let mut parts = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                parts.push(self.schema(item, &format!("{at}/{key}/{i}"), depth + 1)?);
            }
            let body = if parts.is_empty() {
                "\"[\" ws \"]\"".to_string()
            } else {
                format!("\"[\" ws {} ws \"]\"", parts.join(" ws \",\" ws "))
            };
            return self.rule(body);
        }
        let item = match obj.get("items") {
            None => "value".to_string(),
            Some(items) => self.schema(items, &format!("{at}/items"), depth + 1)?,
        };
        let (min, max) = bounds(obj, "minItems", "maxItems", at)?;
        let body = match max {
            Some(0) => "\"[\" ws \"]\"".to_string(),
            _ => {
                let more = repeat(
                    &format!("( ws \",\" ws {item} )"),
                    min.saturating_sub(1),
                    max.map(|m| m - 1),
                );
                if min == 0 {
                    format!("\"[\" ws ( {item} {more} )? ws \"]\"")
                } else {
                    format!("\"[\" ws {item} {more} ws \"]\"")
                }
            }
        };
        self.rule(body)
    }

    fn string(&mut self, obj: &Map<String, Value>, at: &str) -> Result<String, SchemaError> {
        let (min, max) = bounds(obj, "minLength", "maxLength", at)?;
        if min == 0 && max.is_none() {
            return Ok("string".into());
        }
        let chars = repeat("char", min, max);
        self.rule(format!("\"\\\"\" {chars} \"\\\"\""))
    }
}

/// `min`/`max` keywords (non-negative integers up to [`MAX_REPEAT`], min ≤ max).
fn bounds(
    obj: &Map<String, Value>,
    min_key: &str,
    max_key: &str,
    at: &str,
) -> Result<(u64, Option<u64>), SchemaError> {
    let get = |key: &str| -> Result<Option<u64>, SchemaError> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= MAX_REPEAT => Ok(Some(n)),
                Some(_) => Err(invalid(at, &format!("{key} is at most {MAX_REPEAT} here"))),
                None => Err(invalid(at, &format!("{key} is a non-negative integer"))),
            },
        }
    };
    let min = get(min_key)?.unwrap_or(0);
    let max = get(max_key)?;
    if max.is_some_and(|max| max < min) {
        return Err(invalid(at, &format!("{max_key} is below {min_key}")));
    }
    Ok((min, max))
}

/// `expr` repeated `min` to `max` (unbounded: `None`) times.
fn repeat(expr: &str, min: u64, max: Option<u64>) -> String {
    match max {
        Some(0) => String::new(),
        Some(max) if max == min => format!("{expr}{{{min}}}"),
        Some(max) => format!("{expr}{{{min},{max}}}"),
        None if min == 0 => format!("{expr}*"),
        None => format!("{expr}{{{min},}}"),
    }
}

fn invalid(at: &str, reason: &str) -> SchemaError {
    SchemaError::Invalid {
        at: pointer(at).to_string(),
        reason: reason.to_string(),
    }
}

fn pointer(at: &str) -> &str {
    if at.is_empty() {
        "/"
    } else {
        at
    }
}

/// A property name as a JSON pointer segment (RFC 6901).
fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// A GBNF literal matching exactly the compact JSON text of `value`.
fn json_literal(value: &Value) -> String {
    gbnf_literal(&value.to_string())
}

/// A GBNF string literal of `text`: quotes, backslashes and control characters escaped.
fn gbnf_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unsupported_keywords_are_all_named_with_their_place() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^a"},
                "a/b": {"type": "array", "items": {"anyOf": [{"type": "string"}]}},
                "n": {"type": "integer", "minimum": 0}
            },
            "additionalProperties": {"type": "string"}
        });
        let Err(SchemaError::Unsupported(found)) = from_schema(&schema) else {
            panic!("accepted");
        };
        assert_eq!(
            found,
            [
                "additionalProperties as a schema (at /)",
                "pattern (at /properties/name)",
                "anyOf (at /properties/a~1b/items)",
                "minimum (at /properties/n)",
            ]
        );
        let message = SchemaError::Unsupported(found).to_string();
        assert!(
            message.contains("pattern (at /properties/name)"),
            "{message}"
        );
    }

    #[test]
    fn invalid_values_and_sizes_are_refused() {
        for (schema, at) in [
            (json!({"enum": []}), "/"),
            (json!({"type": "strin"}), "/"),
            (json!({"type": "array", "minItems": 3, "maxItems": 2}), "/"),
            (
                json!({"properties": {"x": {"type": "string", "maxLength": -1}}}),
                "/properties/x",
            ),
            (json!({"properties": {"x": 3}}), "/properties/x"),
            (json!({"type": "string", "maxLength": 5000}), "/"),
        ] {
            match from_schema(&schema) {
                Err(SchemaError::Invalid { at: got, .. }) => assert_eq!(got, at, "{schema}"),
                other => panic!("{schema}: {other:?}"),
            }
        }
        let mut deep = json!({"type": "string"});
        for _ in 0..40 {
            deep = json!({"type": "array", "items": deep});
        }
        assert_eq!(from_schema(&deep), Err(SchemaError::TooLarge));
    }

    #[test]
    fn members_keep_the_schema_order_and_optional_ones_may_be_left_out() {
        let schema = json!({
            "type": "object",
            "properties": {"b": {"type": "boolean"}, "a": {"const": "x\"y"}, "c": {"type": "null"}},
            "required": ["a"]
        });
        let g = from_schema(&schema).unwrap();
        let b = g.find(r#""\"b\"""#).unwrap();
        let a = g.find(r#""\"a\"""#).unwrap();
        assert!(b < a, "{g}");
        assert!(g.contains(r#""\"x\\\"y\"""#), "{g}");
        assert!(g.starts_with("root ::= r"), "{g}");
    }

    #[test]
    fn a_list_of_items_is_a_tuple_of_exactly_those() {
        for key in ["items", "prefixItems"] {
            let schema = json!({key: [{"type": "integer"}, {"const": "x"}]});
            let g = from_schema(&schema).unwrap();
            // Exactly two items, no repetition.
            assert!(
                g.contains(r#"r0 ::= "[" ws integer ws "," ws "\"x\"" ws "]""#),
                "{g}"
            );
        }
        assert!(matches!(
            from_schema(&json!({"prefixItems": {"type": "string"}})),
            Err(SchemaError::Invalid { .. })
        ));
    }

    #[test]
    fn literals_escape_what_gbnf_would_read() {
        assert_eq!(gbnf_literal("a\"b\\c\n\u{1}é"), r#""a\"b\\c\n\x01é""#);
    }
}
