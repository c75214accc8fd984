//! Choosing where a new sequence runs: the free slot, and the cached prefix it can reuse.

use crate::token::Token;

/// Length of the common prefix of `a` and `b`.
pub(super) fn common_prefix(a: &[Token], b: &[Token]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Where a prompt's cached prefix comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placement {
    /// The free slot the sequence takes.
    pub(super) slot: usize,
    /// The slot whose KV holds the prefix (`slot` itself, or another one to copy from).
    pub(super) source: usize,
    /// Prompt tokens reused.
    pub(super) reused: usize,
}

/// Picks a free slot for `prompt`: the free one whose own cache shares the longest prefix
/// (ties: the one used longest ago, so recent caches stay for their followers; then the
/// lowest index, so that a lone generation runs in slot 0, as llama-server's), and, when
/// `can_copy` and another slot (busy or free) shares a longer prefix, that slot as the
/// source. At most `prompt.len() - 1` tokens are reused: the last prompt token is always
/// decoded, for its logits. `None` when no slot is free.
pub(super) fn place(
    prompt: &[Token],
    caches: &[(&[Token], bool, u64)],
    can_copy: bool,
) -> Option<Placement> {
    let limit = prompt.len().saturating_sub(1);
    let shared = |cache: &[Token]| common_prefix(cache, prompt).min(limit);
    let (slot, own) = caches
        .iter()
        .enumerate()
        .filter(|(_, (_, free, _))| *free)
        .map(|(i, (cache, _, used))| (i, shared(cache), *used))
        .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then(b.0.cmp(&a.0)))
        .map(|(i, n, _)| (i, n))?;
    let mut best = Placement {
        slot,
        source: slot,
        reused: own,
    };
    if can_copy {
        for (i, (cache, _, _)) in caches.iter().enumerate() {
            let n = shared(cache);
            if n > best.reused {
                best = Placement {
                    slot,
                    source: i,
                    reused: n,
                };
            }
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ids: &[i32]) -> Vec<Token> {
        ids.iter().copied().map(Token).collect()
    }

    #[test]
    fn reuses_the_free_slot_with_the_longest_prefix() {
        let a = t(&[1, 2, 3]);
        let b = t(&[1, 2, 3, 4, 5]);
        let p = t(&[1, 2, 3, 4, 9, 9]);
        let got = place(&p, &[(&a, true, 5), (&b, true, 1)], false).unwrap();
        assert_eq!(
            got,
            Placement {
                slot: 1,
                source: 1,
                reused: 4
            }
        );
    }

    #[test]
    fn copies_from_a_busy_slot_only_when_allowed() {
        let busy = t(&[7, 7, 7, 7]);
        let free = t(&[]);
        let p = t(&[7, 7, 7, 7, 7]);
        let caches = [(&busy[..], false, 9), (&free[..], true, 0)];
        assert_eq!(
            place(&p, &caches, true).unwrap(),
            Placement {
                slot: 1,
                source: 0,
                reused: 4
            }
        );
        assert_eq!(
            place(&p, &caches, false).unwrap(),
            Placement {
                slot: 1,
                source: 1,
                reused: 0
            }
        );
    }

    #[test]
    fn keeps_the_last_prompt_token_to_decode_and_needs_a_free_slot() {
        let a = t(&[1, 2, 3]);
        let p = t(&[1, 2, 3]);
        assert_eq!(place(&p, &[(&a, true, 0)], true).unwrap().reused, 2);
        assert!(place(&p, &[(&a, false, 0)], true).is_none());
    }

    #[test]
    fn ties_go_to_the_slot_used_longest_ago() {
        let e = t(&[]);
        let p = t(&[5, 6]);
        let got = place(&p, &[(&e, true, 8), (&e, true, 3), (&e, true, 6)], false).unwrap();
        assert_eq!(got.slot, 1);
        let fresh = place(&p, &[(&e, true, 0), (&e, true, 0), (&e, true, 0)], false).unwrap();
        assert_eq!(fresh.slot, 0);
        let busy_first = place(&p, &[(&e, false, 0), (&e, true, 0), (&e, true, 0)], false).unwrap();
        assert_eq!(busy_first.slot, 1);
    }
}
