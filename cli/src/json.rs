//! A small JSON writer for `usysv ipcs --json`: objects whose fields are
//! numbers or JSON already written, arrays, and string literals.

use std::fmt::Display;

/// A JSON object being written, its fields in the order added.
pub struct Object {
    text: String,
}

impl Default for Object {
    /// An empty object.
    fn default() -> Object {
        Object {
            text: String::from("{"),
        }
    }
}

impl Object {
    fn key(&mut self, name: &str) {
        if self.text.len() > 1 {
            self.text.push_str(", ");
        }
        self.text.push_str(&string(name));
        self.text.push_str(": ");
    }

    /// Adds a number field.
    pub fn number(mut self, name: &str, value: impl Display) -> Object {
        self.key(name);
        self.text.push_str(&value.to_string());
        self
    }

    /// Adds a field whose value is JSON text already written.
    pub fn raw(mut self, name: &str, json: &str) -> Object {
        self.key(name);
        self.text.push_str(json);
        self
    }

    /// The object's text, on one line.
    pub fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// An array of JSON values, one per line, indented by `indent` spaces (the
/// array's own nesting level).
pub fn array(items: &[String], indent: usize) -> String {
    if items.is_empty() {
        return "[]".into();
    }
    let pad = " ".repeat(indent + 2);
    let body: Vec<String> = items.iter().map(|item| format!("{pad}{item}")).collect();
    format!("[\n{}\n{}]", body.join(",\n"), " ".repeat(indent))
}

/// A JSON string literal.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_arrays_and_escapes() {
        let object = Object::default()
            .number("id", -3)
            .raw("path", &string("a\"b\\c\n\u{1}"))
            .raw("list", &array(&[], 2))
            .finish();
        assert_eq!(
            object,
            r#"{"id": -3, "path": "a\"b\\c\n\u0001", "list": []}"#
        );
        assert_eq!(
            array(&["1".into(), "{}".into()], 2),
            "[\n    1,\n    {}\n  ]"
        );
    }
}
