//! The `synod` command line. It parses arguments, reads and writes files and
//! prints; every protocol step lives in the libraries.

fn main() {
    println!("synod");
}
