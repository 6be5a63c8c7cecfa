//! Writes the 8 MiB pseudo-random table the guest embeds.

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let mut state: u32 = 0x9e37_79b9;
    let table: Vec<u8> = (0..8 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    std::fs::write(out.join("table.bin"), table).expect("write table");
    println!("cargo:rerun-if-changed=build.rs");
}
