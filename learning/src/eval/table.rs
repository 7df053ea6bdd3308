//! Any labelled table (ARFF or CSV) as numeric rows and outlier labels,
//! stratified random splits of it, and min-max scaling fitted on a split's
//! training rows only.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Format of a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Arff,
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "arff" => Ok(Self::Arff),
            "csv" => Ok(Self::Csv),
            _ => Err(format!("unknown format {s:?} (expected arff or csv)")),
        }
    }
}

/// How to read the label column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSpec {
    /// Label column; `None`: `outlier`, else `label`, else the last column.
    pub column: Option<String>,
    /// Value marking an outlier; `None`: `1` (any number equal to 1),
    /// `yes` or `true`.
    pub outlier: Option<String>,
    /// Columns left out of the features (an `id` column always is).
    pub ignore: Vec<String>,
}

/// A labelled table: numeric feature rows and one label per row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Names of the feature columns.
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f32>>,
    /// True for an outlier.
    pub labels: Vec<bool>,
}

/// Why a table could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("no @DATA line: not an ARFF file")]
    NoData,
    #[error("the table has no header row")]
    NoHeader,
    #[error("no label column {0:?} (columns: {1})")]
    NoLabel(String, String),
    #[error("no feature columns left besides the label")]
    NoFeatures,
    #[error("line {line}: {reason}")]
    Row { line: usize, reason: String },
    #[error("{0} rows, {1} outliers: need at least 2 of each to split and rank")]
    TooFew(usize, usize),
}

impl Table {
    pub fn outliers(&self) -> usize {
        self.labels.iter().filter(|l| **l).count()
    }

    /// Parses `text` in `format`.
    pub fn parse(text: &str, format: Format, spec: &LabelSpec) -> Result<Table, TableError> {
        let (names, body) = match format {
            Format::Arff => arff_header(text)?,
            Format::Csv => csv_header(text)?,
        };
        let label = match &spec.column {
            Some(c) => names
                .iter()
                .position(|n| n == c)
                .ok_or_else(|| TableError::NoLabel(c.clone(), names.join(", ")))?,
            None => ["outlier", "label"]
                .iter()
                .find_map(|c| names.iter().position(|n| n.eq_ignore_ascii_case(c)))
                .unwrap_or(names.len() - 1),
        };
        let features: Vec<usize> = (0..names.len())
            .filter(|&i| {
                i != label
                    && !names[i].eq_ignore_ascii_case("id")
                    && !spec.ignore.contains(&names[i])
            })
            .collect();
        if features.is_empty() {
            return Err(TableError::NoFeatures);
        }
        let mut table = Table {
            columns: features.iter().map(|&i| names[i].clone()).collect(),
            ..Table::default()
        };
        for (line, raw) in body {
            let row = |reason: String| TableError::Row { line, reason };
            let fields: Vec<&str> = raw.split(',').map(unquote).collect();
            if fields.len() != names.len() {
                return Err(row(format!(
                    "{} fields, expected {}",
                    fields.len(),
                    names.len()
                )));
            }
            let mut values = Vec::with_capacity(features.len());
            for &i in &features {
                let v = fields[i]
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        row(format!(
                            "{} = {:?} is not a number (leave the column out with --ignore {})",
                            names[i], fields[i], names[i]
                        ))
                    })?;
                values.push(v);
            }
            table.rows.push(values);
            table
                .labels
                .push(is_outlier(fields[label], spec.outlier.as_deref()));
        }
        let (n, k) = (table.rows.len(), table.outliers());
        if k < 2 || n - k < 2 {
            return Err(TableError::TooFew(n, k));
        }
        Ok(table)
    }

    /// `splits` stratified random (train, test) splits of the row indices,
    /// `test_share` of each class in test, split `i` seeded by `seed + i`.
    pub fn splits(&self, splits: usize, test_share: f64, seed: u64) -> Vec<Split> {
        (0..splits as u64)
            .map(|i| {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i));
                let mut split = Split::default();
                for class in [false, true] {
                    let mut idx: Vec<usize> = (0..self.labels.len())
                        .filter(|&r| self.labels[r] == class)
                        .collect();
                    idx.shuffle(&mut rng);
                    let test =
                        ((idx.len() as f64 * test_share).round() as usize).clamp(1, idx.len() - 1);
                    split.test.extend_from_slice(&idx[..test]);
                    split.train.extend_from_slice(&idx[test..]);
                }
                split.train.sort_unstable();
                split.test.sort_unstable();
                split
            })
            .collect()
    }

    /// The rows of `split` scaled to [0, 1] by the training rows' minimum
    /// and maximum per column (test values outside are clipped), with the
    /// test labels.
    pub fn scaled(&self, split: &Split) -> Scaled {
        let width = self.columns.len();
        let mut lo = vec![f32::INFINITY; width];
        let mut hi = vec![f32::NEG_INFINITY; width];
        for &r in &split.train {
            for (j, v) in self.rows[r].iter().enumerate() {
                lo[j] = lo[j].min(*v);
                hi[j] = hi[j].max(*v);
            }
        }
        let scale = |r: usize| -> Vec<f32> {
            self.rows[r]
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let span = hi[j] - lo[j];
                    if span > 0.0 {
                        ((v - lo[j]) / span).clamp(0.0, 1.0)
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        Scaled {
            train: split.train.iter().map(|&r| scale(r)).collect(),
            test: split.test.iter().map(|&r| scale(r)).collect(),
            test_labels: split.test.iter().map(|&r| self.labels[r]).collect(),
        }
    }
}

/// Row indices of one split.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// One split's rows, scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaled {
    pub train: Vec<Vec<f32>>,
    pub test: Vec<Vec<f32>>,
    pub test_labels: Vec<bool>,
}

type Body<'a> = Vec<(usize, &'a str)>;

fn data_lines<'a>(lines: impl Iterator<Item = (usize, &'a str)>) -> Body<'a> {
    lines
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('%'))
        .collect()
}

fn arff_header(text: &str) -> Result<(Vec<String>, Body<'_>), TableError> {
    let mut names = Vec::new();
    let mut lines = text.lines().enumerate();
    for (i, line) in lines.by_ref() {
        let l = line.trim();
        let lower = l.to_ascii_lowercase();
        if lower == "@data" {
            if names.is_empty() {
                return Err(TableError::NoFeatures);
            }
            return Ok((names, data_lines(lines)));
        }
        if lower.starts_with("@attribute") {
            let rest = l["@attribute".len()..].trim_start();
            let name = match rest.chars().next() {
                Some(q @ ('\'' | '"')) => rest[1..].split(q).next(),
                _ => rest.split_whitespace().next(),
            };
            let name = name.ok_or_else(|| TableError::Row {
                line: i + 1,
                reason: "an @ATTRIBUTE without a name".into(),
            })?;
            names.push(name.to_owned());
        }
    }
    Err(TableError::NoData)
}

fn csv_header(text: &str) -> Result<(Vec<String>, Body<'_>), TableError> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty())
        .ok_or(TableError::NoHeader)?;
    let names = header.1.split(',').map(|n| unquote(n).to_owned()).collect();
    Ok((names, data_lines(lines)))
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix(['\'', '"'])
        .and_then(|f| f.strip_suffix(['\'', '"']))
        .unwrap_or(f)
}

fn is_outlier(value: &str, outlier: Option<&str>) -> bool {
    let numeric_eq =
        |a: &str, b: &str| matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y);
    match outlier {
        Some(o) => value == o || numeric_eq(value, o),
        None => {
            numeric_eq(value, "1")
                || value.eq_ignore_ascii_case("yes")
                || value.eq_ignore_ascii_case("true")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LabelSpec {
        LabelSpec {
            column: None,
            outlier: None,
            ignore: Vec::new(),
        }
    }

    const ARFF: &str = "@RELATION t\n@ATTRIBUTE 'id' integer\n@ATTRIBUTE 'outlier' {'yes','no'}\n\
        @ATTRIBUTE 'a' real\n@ATTRIBUTE b real\n@DATA\n0,'no',1,10\n1,'yes',2,20\n% c\n\n\
        2,'no',3,30\n3,'yes',4,40\n4,'no',5,50\n";

    #[test]
    fn arff_label_and_id_columns_are_not_features() {
        let t = Table::parse(ARFF, Format::Arff, &spec()).expect("parses");
        assert_eq!(t.columns, ["a", "b"]);
        assert_eq!(t.rows[1], [2.0, 20.0]);
        assert_eq!(t.labels, [false, true, false, true, false]);
    }

    #[test]
    fn csv_with_a_named_label_and_value() {
        let csv = "x,y,class\n1,2,normal\n3,4,attack\n5,6,normal\n7,8,attack\n";
        let s = LabelSpec {
            column: Some("class".into()),
            outlier: Some("attack".into()),
            ignore: Vec::new(),
        };
        let t = Table::parse(csv, Format::Csv, &s).expect("parses");
        assert_eq!((t.columns.len(), t.outliers()), (2, 2));
        let err = Table::parse(csv, Format::Csv, &spec()).expect_err("class is text");
        assert_eq!(
            err,
            TableError::TooFew(4, 0),
            "the last column, no 1/yes/true"
        );
        let bad = LabelSpec {
            column: Some("kind".into()),
            ..s.clone()
        };
        let err = Table::parse(csv, Format::Csv, &bad).expect_err("no such column");
        assert!(
            err.to_string().contains("no label column \"kind\""),
            "{err}"
        );
        let text = "x,y,class\n1,z,attack\n";
        let err = Table::parse(text, Format::Csv, &s).expect_err("text feature");
        assert!(
            err.to_string()
                .contains("line 2: y = \"z\" is not a number"),
            "{err}"
        );
    }

    #[test]
    fn splits_are_stratified_seeded_and_disjoint() {
        let t = Table::parse(ARFF, Format::Arff, &spec()).expect("parses");
        let a = t.splits(3, 0.4, 7);
        assert_eq!(a, t.splits(3, 0.4, 7));
        assert!(a.windows(2).any(|w| w[0] != w[1]), "seeds differ");
        for s in &a {
            let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
            all.sort_unstable();
            assert_eq!(all, [0, 1, 2, 3, 4]);
            // One of two outliers and one of three normal rows in test.
            assert_eq!(s.test.iter().filter(|&&r| t.labels[r]).count(), 1);
            assert_eq!(s.test.len(), 2);
        }
    }

    #[test]
    fn scaling_uses_training_rows_only() {
        let t = Table::parse(ARFF, Format::Arff, &spec()).expect("parses");
        let split = Split {
            train: vec![1, 2],
            test: vec![0, 4],
        };
        let s = t.scaled(&split);
        assert_eq!(s.train, [[0.0, 0.0], [1.0, 1.0]]);
        assert_eq!(s.test, [[0.0, 0.0], [1.0, 1.0]]);
        assert_eq!(s.test_labels, [false, false]);
    }
}
