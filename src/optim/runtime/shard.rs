//! ZeRO stage 1 inside one optimizer: an optimizer that owns some tensors
//! (`Optimizer::sharded`) keeps states for those only and updates only
//! them, while its gradient pipeline still reads every tensor's gradient,
//! so the global norm, the non-finite guard and the loss scale are those of
//! the unsharded optimizer, bitwise: its blocks keep the unsharded
//! numbering (the fixed order the norm's partials are combined in), the
//! tensors it does not own in stats-only tables that only the statistics
//! pass dispatches. `pool::DataParallel` gathers the updated params from
//! their owners after each step.

use super::part::Plan;
use crate::layout::Placement;
use crate::optim::blocks::Block;
use crate::optim::state::StatePlacement;

/// `plan` (an unsharded part's plan) cut down to the tensors of `owned`:
/// their states alone, their blocks with the unsharded indices and their
/// new state offsets; and the blocks of the part's other tensors, by
/// chunk, for the statistics pass only.
pub(super) fn own(
    plan: Plan,
    owned: &[bool],
    placement: &Placement,
    states: StatePlacement,
) -> (Plan, Vec<(usize, Vec<Block>)>) {
    let mut stats_only: Vec<(usize, Vec<Block>)> = Vec::new();
    let mut tables = Vec::new();
    for (c, d, blocks) in plan.tables {
        let mut mine = Vec::new();
        for mut b in blocks {
            let k = b.tensor as usize;
            if owned[k] {
                // The block's piece, and its new state offset there.
                let local = b.local as u64;
                let (j, p) = placement
                    .pieces(k)
                    .iter()
                    .enumerate()
                    .find(|(_, p)| {
                        p.chunk == c && (p.tensor_offset..p.tensor_offset + p.len).contains(&local)
                    })
                    .expect("a block lies in a piece of its chunk");
                b.state = (states.offsets[k][j] + (local - p.tensor_offset)) as u32;
                mine.push(b);
            } else {
                match stats_only.iter_mut().find(|(x, _)| *x == c) {
                    Some((_, v)) => v.push(b),
                    None => stats_only.push((c, vec![b])),
                }
            }
        }
        if !mine.is_empty() {
            tables.push((c, d, mine));
        }
    }
    let included = plan
        .included
        .iter()
        .zip(owned)
        .map(|(&i, &o)| i && o)
        .collect();
    (
        Plan {
            lead: plan.lead,
            numbered: plan.included,
            included,
            states,
            tables,
            first: plan.first,
        },
        stats_only,
    )
}
