// kernel: what every kernel shares, appended to each (src/gpu/kernels.rs). A kernel defines
// THREADS, its workgroup size, and Params, its parameters: the uniform at binding 0 (its
// buffers follow at 1, 2, ...).
//
// Large dispatches take a 2D grid of workgroups (kernels.rs `Dispatch::record`): a kernel
// flattens it back to one workgroup index and returns from the grid's padding past its last
// workgroup.
//
// Loop bound per invocation: 0 (no loop)

@group(0) @binding(0) var<uniform> params: Params;

// A thread's builtins: its index in its workgroup, its workgroup, and the grid's size.
struct Invocation {
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
}

fn group_index(id: Invocation) -> u32 {
    return id.group_id.x + id.group_id.y * id.groups.x;
}

// One thread per item: the item's index.
fn thread_index(id: Invocation) -> u32 {
    return group_index(id) * THREADS + id.local;
}

// One thread per cell of a table of `cols` columns: the cell's index, row and column.
struct Cell { index: u32, row: u32, col: u32 }

fn cell_of(id: Invocation, cols: u32) -> Cell {
    let index = thread_index(id);
    return Cell(index, index / cols, index % cols);
}

// The workgroups that `items` take at `per_group` each.
fn num_groups(items: u32, per_group: u32) -> u32 {
    return (items + per_group - 1u) / per_group;
}

// L = lanes threads share each row (a power of two: 1 for short rows, more for long ones),
// lane l taking columns l, l + L, ... < end; block b holds rows b * THREADS / L onwards. A
// thread past the last row gets no columns (end = 0) but takes part in the barriers; a block
// past the last row (`past_end`, the same for the whole block) has nothing to do.
struct Lane { local: u32, lanes: u32, lane: u32, row: u32, end: u32, past_end: bool }

fn lane_of(local: u32, lanes: u32, block: u32, num_rows: u32, cols: u32) -> Lane {
    let per_block = THREADS / lanes;
    let row = block * per_block + local / lanes;
    let past_end = block >= num_groups(num_rows, per_block);
    return Lane(local, lanes, local % lanes, row, select(0u, cols, row < num_rows), past_end);
}
