use anyhow::{bail, Result};
use entmin::catalog;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Catalog model to fetch; omit to list the catalog.
    pub name: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let Some(name) = args.name else {
        for m in catalog::MODELS {
            let mark = if m.is_cached() { "cached" } else { "" };
            println!("{:32} {:7} {}", m.name, mark, m.description);
        }
        println!("cache: {}", catalog::home().display());
        return Ok(());
    };
    let Some(entry) = catalog::find(&name) else {
        let names: Vec<&str> = catalog::MODELS.iter().map(|m| m.name).collect();
        bail!("unknown catalog model {name:?}; known: {}", names.join(", "))
    };
    let path = catalog::pull(entry, &super::progress::Bars::new(true))?;
    println!("{}", path.display());
    Ok(())
}
