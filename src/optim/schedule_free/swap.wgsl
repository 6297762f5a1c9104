// schedule_free/swap.wgsl — the train / eval swap of Schedule-Free AdamW and SGD, assembled
// before their update.wgsl (which calls it first): with SWAP_TO_EVAL the params go from y to
// x = lerp(y, z, 1 - 1/beta) (schedulefree's optimizer.eval()), with SWAP_TO_TRAIN from x back
// to y = lerp(x, z, 1 - beta) (optimizer.train()); torch_lerp is prelude.wgsl's CPU lerp. Each
// swap is its own pipeline of the optimizer's module, dispatched once per chunk; it returns
// true when it ran (the update is skipped then).
override SWAP_TO_EVAL: bool = false;
override SWAP_TO_TRAIN: bool = false;

fn swap(i: u32, z: V, to_eval: f32, to_train: f32) -> bool {
    if SWAP_TO_EVAL {
        store_param(i, torch_lerp(load_param(i), z, to_eval));
        return true;
    }
    if SWAP_TO_TRAIN {
        store_param(i, torch_lerp(load_param(i), z, to_train));
        return true;
    }
    return false;
}
