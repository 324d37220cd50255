//! Fair order between projects for work waiting on a node: projects take turns (one item
//! each, round robin), and a project with `cap` items running is skipped until one ends. So a
//! project's backlog never delays another project's next item by more than one turn, and no
//! project holds more than `cap` of the node's slots.

use std::collections::{HashMap, VecDeque};

pub struct FairQueue<T> {
    cap: usize,
    /// Waiting items per project, oldest first.
    waiting: HashMap<String, VecDeque<T>>,
    /// Projects with waiting items, in the order of their turns.
    turns: VecDeque<String>,
    running: HashMap<String, usize>,
}

impl<T> FairQueue<T> {
    pub fn new(cap: usize) -> FairQueue<T> {
        FairQueue {
            cap: cap.max(1),
            waiting: HashMap::new(),
            turns: VecDeque::new(),
            running: HashMap::new(),
        }
    }

    /// Adds an item at the back of its project's line.
    pub fn push(&mut self, project: &str, item: T) {
        let line = self.waiting.entry(project.to_string()).or_default();
        if line.is_empty() {
            self.turns.push_back(project.to_string());
        }
        line.push_back(item);
    }

    /// The next item to start, counted as running until [`FairQueue::done`]: the oldest item
    /// of the first project in turn that is below its cap. That project's turn moves to the
    /// back.
    pub fn next(&mut self) -> Option<(String, T)> {
        let pos = self.turns.iter().position(|p| !self.is_capped(p))?;
        let project = self.turns.remove(pos)?;
        let line = self.waiting.get_mut(&project)?;
        let item = line.pop_front()?;
        if line.is_empty() {
            self.waiting.remove(&project);
        } else {
            self.turns.push_back(project.clone());
        }
        *self.running.entry(project.clone()).or_default() += 1;
        Some((project, item))
    }

    /// One of `project`'s running items ended.
    pub fn done(&mut self, project: &str) {
        if let Some(n) = self.running.get_mut(project) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(project);
            }
        }
    }

    /// Whether `project` has `cap` items running.
    pub fn is_capped(&self, project: &str) -> bool {
        self.running.get(project).copied().unwrap_or(0) >= self.cap
    }

    /// Items waiting (not running).
    pub fn waiting(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }

    /// Takes every waiting item out (a draining node hands them back).
    pub fn take_waiting(&mut self) -> Vec<T> {
        self.turns.clear();
        self.waiting.drain().flat_map(|(_, line)| line).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_take_turns_and_a_capped_project_waits() {
        let mut q = FairQueue::new(2);
        for i in 0..5 {
            q.push("a", format!("a{i}"));
        }
        q.push("b", "b0".to_string());
        q.push("c", "c0".to_string());
        let mut started = Vec::new();
        while let Some((_, item)) = q.next() {
            started.push(item);
        }
        // b and c do not wait behind a's backlog; a stops at its cap of two.
        assert_eq!(started, ["a0", "b0", "c0", "a1"]);
        assert_eq!(q.waiting(), 3);
        q.done("a");
        assert_eq!(q.next().map(|(_, i)| i).as_deref(), Some("a2"));
        assert!(q.next().is_none(), "a is at its cap again");
        q.push("b", "b1".to_string());
        assert_eq!(q.next().map(|(_, i)| i).as_deref(), Some("b1"));
        assert_eq!(q.take_waiting().len(), 2);
        assert!(q.next().is_none());
    }

    #[test]
    fn a_project_below_its_cap_is_served_in_its_turn() {
        let mut q = FairQueue::new(10);
        for i in 0..3 {
            q.push("a", ("a", i));
            q.push("b", ("b", i));
        }
        let order: Vec<_> = std::iter::from_fn(|| q.next().map(|(_, i)| i)).collect();
        assert_eq!(
            order,
            [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
        );
    }
}
