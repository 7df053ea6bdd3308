//! Isolation forest (Liu, Ting and Zhou, 2008): random trees that split a
//! random column at a random point between its smallest and largest value
//! in the node. A row that ends in a shallow leaf is easy to isolate, so
//! unusual, whether it is extreme in one column or odd only in how its
//! columns combine. Trees grown at different sites pool into one forest.

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// Trees in a forest and rows drawn for each (the paper's defaults).
pub const TREES: usize = 100;
pub const SAMPLE: usize = 256;
/// Bound on a stored tree: a full binary tree over [`SAMPLE`] rows.
const MAX_NODES: usize = 2 * SAMPLE;

/// One node: a split (`column`, `at`, children) or a leaf (`size` rows).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Node {
    Split {
        column: u32,
        at: f32,
        left: u32,
        right: u32,
    },
    Leaf {
        size: u32,
    },
}

/// Trees in preorder: children always follow their parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forest {
    /// Rows each tree was grown on (sets the score's normaliser).
    pub sample: usize,
    pub trees: Vec<Vec<Node>>,
}

/// Average path length of an unsuccessful search in a binary search tree
/// of `n` rows: the depth a leaf of `n` rows stands for.
fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        n => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

impl Forest {
    /// Grows `trees` trees, each on up to [`SAMPLE`] rows drawn without
    /// replacement, to the depth `ceil(log2(sample))`.
    pub fn fit(rows: &[&[f32]], trees: usize, seed: u64) -> Forest {
        let mut rng = StdRng::seed_from_u64(seed);
        let sample_size = rows.len().min(SAMPLE);
        let depth = (sample_size.max(2) as f64).log2().ceil() as usize;
        let trees = (0..trees)
            .map(|_| {
                let mut picked: Vec<&[f32]> = sample(&mut rng, rows.len(), sample_size)
                    .into_iter()
                    .map(|i| rows[i])
                    .collect();
                let mut nodes = Vec::new();
                grow(&mut picked, depth, &mut rng, &mut nodes);
                nodes
            })
            .collect();
        Forest {
            sample: sample_size,
            trees,
        }
    }

    /// Anomaly score in (0, 1]: `2^(-mean path length / c(sample))`;
    /// about 0.5 or less for ordinary rows, near 1 for isolated ones.
    pub fn score(&self, row: &[f32]) -> f32 {
        if self.trees.is_empty() {
            return 0.0;
        }
        let total: f64 = self.trees.iter().map(|t| path(t, row)).sum();
        let mean = total / self.trees.len() as f64;
        2f64.powf(-mean / c(self.sample).max(1e-9)) as f32
    }

    /// Problems with stored trees for rows of `inputs` columns.
    pub fn problems(&self, inputs: usize) -> Option<String> {
        if !(2..=SAMPLE).contains(&self.sample) {
            return Some(format!(
                "forest: sample {} outside 2..={SAMPLE}",
                self.sample
            ));
        }
        for (t, nodes) in self.trees.iter().enumerate() {
            if nodes.is_empty() || nodes.len() > MAX_NODES {
                return Some(format!("forest: tree {t} has {} nodes", nodes.len()));
            }
            for (i, n) in nodes.iter().enumerate() {
                if let Node::Split {
                    column,
                    at,
                    left,
                    right,
                } = *n
                {
                    let child_ok = |c: u32| (c as usize) > i && (c as usize) < nodes.len();
                    if column as usize >= inputs
                        || !at.is_finite()
                        || !child_ok(left)
                        || !child_ok(right)
                    {
                        return Some(format!("forest: tree {t} node {i} is not a valid split"));
                    }
                }
            }
        }
        None
    }
}

/// Depth of `row` in one tree, plus the expected depth below its leaf.
fn path(nodes: &[Node], row: &[f32]) -> f64 {
    let (mut i, mut depth) = (0usize, 0.0);
    // Children follow parents, so a walk ends within nodes.len() steps.
    for _ in 0..nodes.len() {
        match nodes.get(i) {
            Some(Node::Split {
                column,
                at,
                left,
                right,
            }) => {
                let v = row.get(*column as usize).copied().unwrap_or(0.0);
                i = if v < *at { *left } else { *right } as usize;
                depth += 1.0;
            }
            Some(Node::Leaf { size }) => return depth + c(*size as usize),
            None => break,
        }
    }
    depth
}

/// Appends the subtree over `rows` to `nodes` in preorder.
fn grow(rows: &mut [&[f32]], depth: usize, rng: &mut StdRng, nodes: &mut Vec<Node>) {
    let here = nodes.len();
    nodes.push(Node::Leaf {
        size: rows.len() as u32,
    });
    if depth == 0 || rows.len() <= 1 {
        return;
    }
    // Columns that still vary among these rows, with their range.
    let width = rows[0].len();
    let ranges: Vec<(usize, f32, f32)> = (0..width)
        .filter_map(|j| {
            let (lo, hi) = rows
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), r| {
                    (lo.min(r[j]), hi.max(r[j]))
                });
            (hi > lo).then_some((j, lo, hi))
        })
        .collect();
    if ranges.is_empty() {
        return;
    }
    let (column, lo, hi) = ranges[rng.random_range(0..ranges.len())];
    let at = rng.random_range(lo..hi);
    let mut split = 0;
    for k in 0..rows.len() {
        if rows[k][column] < at {
            rows.swap(k, split);
            split += 1;
        }
    }
    let (left_rows, right_rows) = rows.split_at_mut(split);
    let left = nodes.len() as u32;
    grow(left_rows, depth - 1, rng, nodes);
    let right = nodes.len() as u32;
    grow(right_rows, depth - 1, rng, nodes);
    nodes[here] = Node::Split {
        column: column as u32,
        at,
        left,
        right,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Vec<Vec<f32>> {
        // Rows on the diagonal band x ≈ y: each column alone is uniform.
        (0..1000)
            .map(|i| {
                let x = (i % 100) as f32 / 100.0;
                vec![x, x + ((i / 100) as f32 - 5.0) * 0.002]
            })
            .collect()
    }

    #[test]
    fn an_odd_combination_isolates_faster_than_an_ordinary_row() {
        let rows = grid();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let f = Forest::fit(&refs, TREES, 7);
        assert_eq!(f.sample, SAMPLE);
        assert!(f.problems(2).is_none());
        let ordinary = f.score(&[0.5, 0.5]);
        let odd = f.score(&[0.1, 0.9]);
        assert!(odd > ordinary + 0.1, "odd {odd} ordinary {ordinary}");
        // Seeded: the same forest again.
        assert_eq!(Forest::fit(&refs, TREES, 7), f);
    }

    #[test]
    fn stored_trees_are_checked() {
        let rows = grid();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let mut f = Forest::fit(&refs, 3, 1);
        assert!(f.problems(1).is_some(), "column 1 of a 1-column input");
        f.trees[0][0] = Node::Split {
            column: 0,
            at: 0.5,
            left: 0,
            right: 0,
        };
        assert!(f.problems(2).expect("a loop").contains("tree 0 node 0"));
        let json = serde_json::to_string(&Forest::fit(&refs, 2, 1)).expect("json");
        let back: Forest = serde_json::from_str(&json).expect("parse");
        assert!(back.problems(2).is_none());
    }

    #[test]
    fn path_lengths_match_the_paper() {
        assert_eq!(c(1), 0.0);
        assert_eq!(c(2), 1.0);
        assert!((c(256) - 10.24).abs() < 0.01, "{}", c(256));
    }
}
