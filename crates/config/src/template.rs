//! Rendering the milvus.yaml template shipped with the `milvus` wheel (tests only).
//!
//! Placeholders look like `{{ name(type): default }}`, `{{ name: default }}` or `{{ name }}`.

/// Replaces every placeholder with its value from `overrides` (by name), else its default, else
/// the empty string. Text outside placeholders is kept byte for byte.
pub fn render_template(template: &str, overrides: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + len];
        let (declaration, default) = match inner.split_once(':') {
            Some((declaration, default)) => (declaration, default.trim()),
            None => (inner, ""),
        };
        // `name(int)`: the type annotation is not part of the name.
        let name = declaration
            .split_once('(')
            .map_or(declaration, |(name, _)| name)
            .trim();
        let value = overrides
            .iter()
            .find(|(candidate, _)| *candidate == name)
            .map_or(default, |(_, value)| *value);
        out.push_str(value);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_take_overrides_then_defaults() {
        let template = "a: {{ a_port(int): 1 }}\nb: x-{{ b_dir }}\nc: {{ c_level: info }} # note\n";
        assert_eq!(
            render_template(template, &[("b_dir", "/tmp/b")]),
            "a: 1\nb: x-/tmp/b\nc: info # note\n"
        );
        assert_eq!(
            render_template(template, &[("a_port", "7"), ("c_level", "debug")]),
            "a: 7\nb: x-\nc: debug # note\n"
        );
    }
}
