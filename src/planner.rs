//! The FK planner: plain Rust over catalog rows, no database needed.
//!
//! Given the tables that have time-based policies and every foreign key of the
//! database, it finds the tables a run deletes from (the policy tables and all
//! their dependents through NO ACTION / RESTRICT / CASCADE keys) and the order
//! in which a batch deletes them: children before parents. SET NULL and SET
//! DEFAULT keys are not walked; Postgres applies them when the parent goes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// A relation's oid, as a plain number so that the planner needs no Postgres.
pub type RelId = u32;

/// `pg_constraint.confdeltype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDelete {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl OnDelete {
    pub fn from_confdeltype(code: &str) -> Option<Self> {
        match code {
            "a" => Some(Self::NoAction),
            "r" => Some(Self::Restrict),
            "c" => Some(Self::Cascade),
            "n" => Some(Self::SetNull),
            "d" => Some(Self::SetDefault),
            _ => None,
        }
    }

    /// Children behind these keys must be deleted by the run before their
    /// parents: NO ACTION/RESTRICT would fail, and CASCADE would delete an
    /// unbounded number of rows inside one parent batch.
    pub fn is_walked(self) -> bool {
        matches!(self, Self::NoAction | Self::Restrict | Self::Cascade)
    }
}

/// One foreign key constraint: `child(child_columns) REFERENCES parent(parent_columns)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignKey {
    pub name: String,
    pub child: RelId,
    pub parent: RelId,
    pub child_columns: Vec<String>,
    pub parent_columns: Vec<String>,
    pub on_delete: OnDelete,
    /// A copy Postgres made of a foreign key that references a partitioned
    /// table, for one of its partitions: the original stands for it when
    /// rows are deleted through the partitioned table.
    pub partition_copy: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PlanError {
    /// A walked foreign key from a table to itself: deleting a batch would need
    /// a recursive walk of the same table, which the run does not do.
    SelfReference { constraint: String, table: RelId },
    /// Walked foreign keys that form a cycle between tables.
    Cycle { constraints: Vec<String> },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SelfReference { constraint, .. } => {
                write!(f, "foreign key {constraint} references its own table")
            }
            Self::Cycle { constraints } => {
                write!(f, "foreign keys form a cycle: {}", constraints.join(", "))
            }
        }
    }
}

/// What a run deletes from, and in which order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every table a run may delete from, children before parents.
    pub order: Vec<RelId>,
    /// The walked foreign keys between those tables.
    pub edges: Vec<ForeignKey>,
}

impl Plan {
    /// Walked keys whose parent is `parent`: the children a batch of `parent`
    /// rows must be cleared of first.
    pub fn child_edges(&self, parent: RelId) -> impl Iterator<Item = &ForeignKey> {
        self.edges.iter().filter(move |e| e.parent == parent)
    }

    /// Walked keys whose child is `child`: why rows of `child` may be deleted.
    pub fn parent_edges(&self, child: RelId) -> impl Iterator<Item = &ForeignKey> {
        self.edges.iter().filter(move |e| e.child == child)
    }

    pub fn contains(&self, rel: RelId) -> bool {
        self.order.contains(&rel)
    }

    /// Position of `rel` in the children-first order.
    pub fn position(&self, rel: RelId) -> Option<usize> {
        self.order.iter().position(|r| *r == rel)
    }
}

/// Builds the plan for time-based policies on `roots`.
///
/// Ties in the order are broken by relation id so that the same catalog always
/// gives the same plan.
pub fn plan(roots: &[RelId], foreign_keys: &[ForeignKey]) -> Result<Plan, PlanError> {
    let walked: Vec<&ForeignKey> = foreign_keys
        .iter()
        .filter(|fk| fk.on_delete.is_walked())
        .collect();

    // Closure: the roots and everything that references them, transitively.
    let mut closure: BTreeSet<RelId> = roots.iter().copied().collect();
    let mut frontier: Vec<RelId> = closure.iter().copied().collect();
    while let Some(parent) = frontier.pop() {
        for fk in walked.iter().filter(|fk| fk.parent == parent) {
            if fk.child == fk.parent {
                return Err(PlanError::SelfReference {
                    constraint: fk.name.clone(),
                    table: fk.child,
                });
            }
            if closure.insert(fk.child) {
                frontier.push(fk.child);
            }
        }
    }

    let edges: Vec<ForeignKey> = walked
        .into_iter()
        .filter(|fk| closure.contains(&fk.child) && closure.contains(&fk.parent))
        .cloned()
        .collect();

    // Kahn's algorithm, children first: a table is ready once all the tables
    // referencing it are placed.
    let mut pending_children: BTreeMap<RelId, usize> = closure.iter().map(|r| (*r, 0)).collect();
    for e in &edges {
        *pending_children
            .get_mut(&e.parent)
            .expect("parent in closure") += 1;
    }
    let mut ready: BTreeSet<RelId> = pending_children
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(r, _)| *r)
        .collect();
    let mut order = Vec::with_capacity(closure.len());
    while let Some(rel) = ready.pop_first() {
        order.push(rel);
        for e in edges.iter().filter(|e| e.child == rel) {
            let n = pending_children
                .get_mut(&e.parent)
                .expect("parent in closure");
            *n -= 1;
            if *n == 0 {
                ready.insert(e.parent);
            }
        }
    }
    if order.len() < closure.len() {
        let placed: BTreeSet<RelId> = order.iter().copied().collect();
        return Err(PlanError::Cycle {
            constraints: cycle_constraints(&edges, &placed),
        });
    }
    Ok(Plan { order, edges })
}

/// Names the constraints of one cycle among the tables Kahn could not place.
fn cycle_constraints(edges: &[ForeignKey], placed: &BTreeSet<RelId>) -> Vec<String> {
    let stuck: Vec<&ForeignKey> = edges
        .iter()
        .filter(|e| !placed.contains(&e.child) && !placed.contains(&e.parent))
        .collect();
    // Every stuck table has a stuck child, so following child links from any
    // stuck table must come back to a table already seen.
    let Some(start) = stuck.first().map(|e| e.parent) else {
        return Vec::new();
    };
    let mut path: Vec<(RelId, &ForeignKey)> = Vec::new();
    let mut current = start;
    loop {
        if let Some(at) = path.iter().position(|(rel, _)| *rel == current) {
            let mut names: Vec<String> = path[at..].iter().map(|(_, e)| e.name.clone()).collect();
            names.sort();
            return names;
        }
        let Some(edge) = stuck.iter().find(|e| e.parent == current) else {
            return stuck.iter().map(|e| e.name.clone()).collect();
        };
        path.push((current, edge));
        current = edge.child;
    }
}

/// Orders orphan-policy tables so that a table referencing another comes first:
/// deleting orphaned children can orphan their parents, never the reverse.
///
/// `partition_ancestors` maps a partition to its partitioned ancestors: a
/// foreign key declared on a partition references from each of them too (an
/// orphan policy on the partitioned table deletes the partition's rows).
pub fn orphan_order(
    tables: &[RelId],
    foreign_keys: &[ForeignKey],
    partition_ancestors: &HashMap<RelId, Vec<RelId>>,
) -> Vec<RelId> {
    let set: BTreeSet<RelId> = tables.iter().copied().collect();
    let mut remaining = set.clone();
    let mut order = Vec::with_capacity(set.len());
    let referencing = |fk: &ForeignKey| -> Vec<RelId> {
        let mut from = vec![fk.child];
        from.extend(
            partition_ancestors
                .get(&fk.child)
                .into_iter()
                .flatten()
                .copied(),
        );
        from
    };
    while !remaining.is_empty() {
        // A table is ready when no other remaining table references it.
        let next = remaining
            .iter()
            .copied()
            .find(|rel| {
                !foreign_keys.iter().any(|fk| {
                    fk.parent == *rel
                        && referencing(fk)
                            .iter()
                            .any(|child| child != rel && remaining.contains(child))
                })
            })
            // Mutually referencing orphan tables: fall back to id order.
            .unwrap_or_else(|| *remaining.iter().next().expect("non-empty"));
        remaining.remove(&next);
        order.push(next);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fk(name: &str, child: RelId, parent: RelId, on_delete: OnDelete) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            child,
            parent,
            child_columns: vec![format!("{parent}_id")],
            parent_columns: vec!["id".into()],
            on_delete,
            partition_copy: false,
        }
    }

    // tournaments(1) <- events(2) <- odds_snapshots(3) <- market_odds(4)
    fn odds_chain() -> Vec<ForeignKey> {
        vec![
            fk("events_tournament_fk", 2, 1, OnDelete::NoAction),
            fk("snapshots_event_fk", 3, 2, OnDelete::NoAction),
            fk("market_odds_snapshot_fk", 4, 3, OnDelete::Cascade),
        ]
    }

    #[test]
    fn chain_is_ordered_children_first() {
        let p = plan(&[2, 3], &odds_chain()).unwrap();
        assert_eq!(p.order, vec![4, 3, 2]);
        assert_eq!(
            p.edges.len(),
            2,
            "the events->tournaments key is not walked"
        );
        assert!(
            !p.contains(1),
            "a parent of a policy table is never deleted from"
        );
    }

    #[test]
    fn chains_of_any_depth() {
        let fks: Vec<ForeignKey> = (2..=10)
            .map(|c| fk(&format!("fk{c}"), c, c - 1, OnDelete::Restrict))
            .collect();
        let p = plan(&[1], &fks).unwrap();
        assert_eq!(p.order, (1..=10).rev().collect::<Vec<_>>());
    }

    #[test]
    fn several_children_and_a_diamond() {
        // 1 <- 2, 1 <- 3, 2 <- 4, 3 <- 4
        let fks = vec![
            fk("a", 2, 1, OnDelete::NoAction),
            fk("b", 3, 1, OnDelete::NoAction),
            fk("c", 4, 2, OnDelete::NoAction),
            fk("d", 4, 3, OnDelete::NoAction),
        ];
        let p = plan(&[1], &fks).unwrap();
        assert_eq!(p.order, vec![4, 2, 3, 1]);
        assert_eq!(p.child_edges(1).count(), 2);
        assert_eq!(p.parent_edges(4).count(), 2);
    }

    #[test]
    fn set_null_and_set_default_are_left_to_postgres() {
        let fks = vec![
            fk("nulls", 2, 1, OnDelete::SetNull),
            fk("defaults", 3, 1, OnDelete::SetDefault),
            fk("below_nulls", 4, 2, OnDelete::NoAction),
        ];
        let p = plan(&[1], &fks).unwrap();
        assert_eq!(p.order, vec![1]);
        assert!(p.edges.is_empty());
    }

    #[test]
    fn unrelated_tables_stay_out() {
        let mut fks = odds_chain();
        fks.push(fk("other", 20, 10, OnDelete::NoAction));
        let p = plan(&[3], &fks).unwrap();
        assert_eq!(p.order, vec![4, 3]);
    }

    #[test]
    fn composite_keys_keep_their_columns() {
        let fks = vec![ForeignKey {
            name: "composite".into(),
            child: 2,
            parent: 1,
            child_columns: vec!["a".into(), "b".into()],
            parent_columns: vec!["x".into(), "y".into()],
            on_delete: OnDelete::NoAction,
            partition_copy: false,
        }];
        let p = plan(&[1], &fks).unwrap();
        let e = p.child_edges(1).next().unwrap();
        assert_eq!(e.child_columns, vec!["a", "b"]);
        assert_eq!(e.parent_columns, vec!["x", "y"]);
    }

    #[test]
    fn self_reference_is_refused_with_its_name() {
        let fks = vec![fk("parent_fk", 1, 1, OnDelete::NoAction)];
        assert_eq!(
            plan(&[1], &fks).unwrap_err(),
            PlanError::SelfReference {
                constraint: "parent_fk".into(),
                table: 1
            }
        );
        // Left to Postgres when it is SET NULL.
        let fks = vec![fk("parent_fk", 1, 1, OnDelete::SetNull)];
        assert_eq!(plan(&[1], &fks).unwrap().order, vec![1]);
    }

    #[test]
    fn cycle_is_refused_naming_its_constraints() {
        let fks = vec![
            fk("to_top", 2, 1, OnDelete::NoAction),
            fk("b_to_a", 3, 2, OnDelete::NoAction),
            fk("a_to_b", 2, 3, OnDelete::NoAction),
        ];
        assert_eq!(
            plan(&[1], &fks).unwrap_err(),
            PlanError::Cycle {
                constraints: vec!["a_to_b".into(), "b_to_a".into()]
            }
        );
    }

    #[test]
    fn orphans_go_children_first() {
        let fks = odds_chain();
        let none = HashMap::new();
        assert_eq!(orphan_order(&[1, 2], &fks, &none), vec![2, 1]);
        assert_eq!(orphan_order(&[1], &fks, &none), vec![1]);
    }

    /// tags(1) <- partition 21 of posts(20): the orphan policy on posts
    /// deletes rows of the partition, so it goes before the one on tags.
    #[test]
    fn a_key_on_a_partition_orders_its_partitioned_table_first() {
        let fks = vec![fk("posts_p1_tag_fk", 21, 1, OnDelete::Restrict)];
        let ancestors = HashMap::from([(21, vec![20])]);
        assert_eq!(orphan_order(&[1, 20], &fks, &ancestors), vec![20, 1]);
        assert_eq!(orphan_order(&[1, 20], &fks, &HashMap::new()), vec![1, 20]);
    }
}
