//! What a scenario measured (figures) and what it asserts (checks), printed as it runs and written
//! as Markdown for docs/RELIABILITY.md.

use std::fmt::Write as _;

pub struct Report {
    pub title: &'static str,
    figures: Vec<(String, String)>,
    checks: Vec<(bool, String)>,
}

impl Report {
    pub fn new(title: &'static str) -> Report {
        Report {
            title,
            figures: Vec::new(),
            checks: Vec::new(),
        }
    }

    pub fn figure(&mut self, label: impl Into<String>, value: impl ToString) {
        let (label, value) = (label.into(), value.to_string());
        println!("    {label}: {value}");
        self.figures.push((label, value));
    }

    /// Records a claim and whether the run bore it out; the scenario fails if any claim is false.
    pub fn check(&mut self, passed: bool, claim: impl Into<String>) {
        let claim = claim.into();
        println!("  {} {claim}", if passed { "ok  " } else { "FAIL" });
        self.checks.push((passed, claim));
    }

    /// A scenario that panicked (a set-up step failed) fails with the panic as its reason.
    pub fn crashed(&mut self, reason: &str) {
        self.check(false, format!("the scenario ran to the end ({reason})"));
    }

    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|(passed, _)| *passed)
    }

    pub fn markdown(&self) -> String {
        let mut text = format!("### {}\n\n| figure | value |\n| --- | --- |\n", self.title);
        for (label, value) in &self.figures {
            let _ = writeln!(text, "| {label} | {value} |");
        }
        text.push('\n');
        for (passed, claim) in &self.checks {
            let _ = writeln!(text, "- {} {claim}", if *passed { "✔" } else { "✘ FAILED:" });
        }
        text
    }
}
