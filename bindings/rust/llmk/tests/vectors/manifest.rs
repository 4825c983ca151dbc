//! Reads `manifest.txt`: one case per line, space-separated `key=value` tokens; lines starting
//! with `#` and blank lines are comments.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// One case: every `key=value` token of its line.
pub struct Case {
    pub name: String,
    fields: BTreeMap<String, String>,
}

impl Case {
    /// The value of a key the case must have.
    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.find(key).ok_or_else(|| format!("no key {key}"))
    }

    /// The value of a key the case may have.
    pub fn find(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn parse(line: &str) -> Result<Self, String> {
        let mut fields = BTreeMap::new();
        for token in line.split_whitespace() {
            let (key, value) = token
                .split_once('=')
                .ok_or_else(|| format!("token {token:?} is not key=value"))?;
            if fields.insert(key.to_owned(), value.to_owned()).is_some() {
                return Err(format!("key {key} appears twice"));
            }
        }
        let name = fields.get("name").ok_or("the case has no name")?.clone();
        Ok(Self { name, fields })
    }
}

/// The cases of `dir/manifest.txt`, in file order.
pub fn load(dir: &Path) -> Result<Vec<Case>, String> {
    let path = dir.join("manifest.txt");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(index, line)| {
            Case::parse(line).map_err(|e| format!("{}:{}: {e}", path.display(), index + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens() {
        let case = Case::parse("name=a/b op=rms_norm x.shape=2,3 eps=1e-06").unwrap();
        assert_eq!(case.name, "a/b");
        assert_eq!(case.get("x.shape").unwrap(), "2,3");
        assert_eq!(case.find("y"), None);
        assert!(case.get("y").is_err());
        assert!(Case::parse("name=a x").is_err());
        assert!(Case::parse("name=a x=1 x=2").is_err());
        assert!(Case::parse("op=rms_norm").is_err());
    }
}
