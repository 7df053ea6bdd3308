//! A slab of values threaded on a few intrusive doubly linked lists.
//!
//! The flow table keeps each flow on lists ordered by time (last packet,
//! record start, end of connection, first SYN), so the oldest entry of each is found in
//! O(1) and moving an entry to the back is O(1): no scan of the whole table on
//! the per-packet path. Indices are `u32`; a freed slot is reused.

/// Number of lists every slot can be on.
pub(super) const LISTS: usize = 4;
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    linked: bool,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
    linked: false,
};

#[derive(Debug, Clone, Copy)]
struct Ends {
    head: u32,
    tail: u32,
}

#[derive(Debug)]
struct Entry<T> {
    value: Option<T>,
    links: [Link; LISTS],
}

#[derive(Debug)]
pub(super) struct Slots<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    lists: [Ends; LISTS],
    len: usize,
}

impl<T> Slots<T> {
    pub(super) fn new() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            lists: [Ends {
                head: NIL,
                tail: NIL,
            }; LISTS],
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` on no list and returns its index.
    pub(super) fn insert(&mut self, value: T) -> u32 {
        self.len += 1;
        let entry = Entry {
            value: Some(value),
            links: [UNLINKED; LISTS],
        };
        if let Some(i) = self.free.pop()
            && let Some(slot) = self.entries.get_mut(i as usize)
        {
            *slot = entry;
            return i;
        }
        self.entries.push(entry);
        u32::try_from(self.entries.len() - 1).unwrap_or(NIL)
    }

    /// Takes the value out of slot `i` and off every list.
    pub(super) fn remove(&mut self, i: u32) -> Option<T> {
        for list in 0..LISTS {
            self.unlink(list, i);
        }
        let value = self.entries.get_mut(i as usize)?.value.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(value)
    }

    pub(super) fn get(&self, i: u32) -> Option<&T> {
        self.entries.get(i as usize)?.value.as_ref()
    }

    pub(super) fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.entries.get_mut(i as usize)?.value.as_mut()
    }

    /// The oldest entry of `list`.
    pub(super) fn front(&self, list: usize) -> Option<u32> {
        let head = self.lists.get(list)?.head;
        (head != NIL).then_some(head)
    }

    /// Moves slot `i` to the back of `list` (appends it when not on it).
    pub(super) fn push_back(&mut self, list: usize, i: u32) {
        if self.get(i).is_none() || list >= LISTS {
            return;
        }
        self.unlink(list, i);
        let tail = self.lists[list].tail;
        self.set_link(
            list,
            i,
            Link {
                prev: tail,
                next: NIL,
                linked: true,
            },
        );
        if tail == NIL {
            self.lists[list].head = i;
        } else if let Some(t) = self.link_mut(list, tail) {
            t.next = i;
        }
        self.lists[list].tail = i;
    }

    /// Takes slot `i` off `list`; nothing when it is not on it.
    pub(super) fn unlink(&mut self, list: usize, i: u32) {
        let Some(link) = self.link_mut(list, i) else {
            return;
        };
        if !link.linked {
            return;
        }
        let Link { prev, next, .. } = *link;
        *link = UNLINKED;
        match self.link_mut(list, prev) {
            Some(p) => p.next = next,
            None => self.lists[list].head = next,
        }
        match self.link_mut(list, next) {
            Some(n) => n.prev = prev,
            None => self.lists[list].tail = prev,
        }
    }

    fn link_mut(&mut self, list: usize, i: u32) -> Option<&mut Link> {
        self.entries.get_mut(i as usize)?.links.get_mut(list)
    }

    fn set_link(&mut self, list: usize, i: u32, link: Link) {
        if let Some(l) = self.link_mut(list, i) {
            *l = link;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(s: &Slots<&'static str>, list: usize) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut cur = s.front(list);
        while let Some(i) = cur {
            out.push(*s.get(i).expect("linked slot holds a value"));
            let next = s.entries[i as usize].links[list].next;
            cur = (next != NIL).then_some(next);
            assert!(out.len() <= s.len(), "cycle in list {list}");
        }
        out
    }

    #[test]
    fn lists_keep_order_and_reuse_slots() {
        let mut s = Slots::new();
        let a = s.insert("a");
        let b = s.insert("b");
        let c = s.insert("c");
        for i in [a, b, c] {
            s.push_back(0, i);
        }
        s.push_back(1, c);
        s.push_back(1, a);
        assert_eq!(order(&s, 0), ["a", "b", "c"]);
        s.push_back(0, a);
        assert_eq!(order(&s, 0), ["b", "c", "a"]);
        assert_eq!(s.remove(c), Some("c"));
        assert_eq!(order(&s, 0), ["b", "a"]);
        assert_eq!(order(&s, 1), ["a"]);
        assert_eq!(s.remove(c), None);
        let d = s.insert("d");
        assert_eq!(d, c, "freed slot reused");
        assert_eq!(order(&s, 0), ["b", "a"], "new slot is on no list");
        s.unlink(0, b);
        s.unlink(0, b);
        assert_eq!(order(&s, 0), ["a"]);
        assert_eq!(s.len(), 3);
    }
}
