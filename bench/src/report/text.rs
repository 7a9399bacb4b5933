//! Plain-text and Markdown tables, and the number formats the report uses.

use std::fmt::Write as _;

/// A whole number with thousands separators: 63,891.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Two decimals below 10 ms, one above; `—` for none.
pub fn milliseconds(value: Option<f64>) -> String {
    match value {
        None => "—".to_owned(),
        Some(ms) if ms < 10.0 => format!("{ms:.2}"),
        Some(ms) => format!("{ms:.1}"),
    }
}

pub fn aligned(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> Vec<String> {
    let width = |index: usize| {
        rows.iter()
            .filter_map(|row| row.get(index))
            .map(|cell| cell.chars().count())
            .chain(std::iter::once(header[index].chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(index, cell)| {
                let pad = " ".repeat(widths[index].saturating_sub(cell.chars().count()));
                if right.contains(&index) {
                    format!("{pad}{cell}")
                } else {
                    format!("{cell}{pad}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut lines = vec![line(header.iter().map(|cell| (*cell).to_owned()).collect())];
    lines.push(line(widths.iter().map(|width| "─".repeat(*width)).collect()));
    lines.extend(rows.iter().map(|row| line(row.clone())));
    lines
}

pub fn markdown_table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut text = format!("| {} |\n|", header.join(" | "));
    for index in 0..header.len() {
        text += if right.contains(&index) { " ---: |" } else { " --- |" };
    }
    text.push('\n');
    for row in rows {
        let cells: Vec<&str> = row
            .iter()
            .map(|cell| if cell.trim().is_empty() { " " } else { cell.trim() })
            .collect();
        let _ = writeln!(text, "| {} |", cells.join(" | "));
    }
    text
}
