//! [`ParseCx`]: the file being parsed, and the helpers every section parser uses to read
//! typed values and to place its errors at `file:line:column`.

use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

use super::error::line_col;
use super::ConfigError;

/// A TOML value with its place in the source.
pub type Value<'i> = Spanned<DeValue<'i>>;

/// The configuration file being parsed.
pub struct ParseCx<'a> {
    /// Its path (for messages and relative paths).
    pub file: &'a Path,
    /// Its text.
    pub source: &'a str,
}

impl ParseCx<'_> {
    /// An error at the start of `span`.
    pub fn err<T>(&self, span: Range<usize>, message: String) -> Result<T, ConfigError> {
        Err(self.error(span, message))
    }

    /// The error value for `span`.
    pub fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        ConfigError::at(self.file, self.source, span.start, message)
    }

    /// (line, column) of a value.
    pub fn place<T>(&self, v: &Spanned<T>) -> (usize, usize) {
        line_col(self.source, v.span().start)
    }

    /// Deserializes `value` (a table) into a section's raw struct; serde's errors are
    /// placed and worded like the loader's own (`unknown key 'x' in [table]`).
    pub fn deserialize<T: DeserializeOwned>(&self, value: Value<'_>) -> Result<T, ConfigError> {
        T::deserialize(ValueDeserializer::from(value))
            .map_err(|e| super::load::serde_error(self.file, self.source, &e))
    }

    /// An optional integer key checked against `range`; `default` when absent.
    pub fn int(
        &self,
        v: &Option<Spanned<i64>>,
        key: &str,
        table: &str,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if range.contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => self.err(
                s.span(),
                format!(
                    "key '{key}' in [{table}] is {}, must be {}..={}",
                    s.get_ref(),
                    range.start(),
                    range.end()
                ),
            ),
        }
    }

    /// A string key that must be one of `choices` (its text and its value); `default`
    /// when absent (`v` is `None`).
    pub fn choice<T: Copy>(
        &self,
        v: Option<&Spanned<String>>,
        key: &str,
        table: &str,
        choices: &[(&str, T)],
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(s) = v else { return Ok(default) };
        if let Some((_, t)) = choices.iter().find(|(name, _)| *name == s.get_ref()) {
            return Ok(*t);
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("'{n}'")).collect();
        let expected = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        };
        self.err(
            s.span(),
            format!(
                "key '{key}' in [{table}] is '{}', expected {expected}",
                s.get_ref()
            ),
        )
    }

    /// Like [`ParseCx::int`], and the value must be a power of two.
    pub fn pow2(
        &self,
        v: &Option<Spanned<i64>>,
        key: &str,
        table: &str,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, ConfigError> {
        let n = self.int(v, key, table, range, default)?;
        match v {
            Some(s) if !(n as u64).is_power_of_two() => self.err(
                s.span(),
                format!("key '{key}' in [{table}] must be a power of two"),
            ),
            _ => Ok(n),
        }
    }

    /// A path relative to the configuration file's directory (absolute paths as given).
    pub fn path(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            return p;
        }
        match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
            _ => p,
        }
    }
}
