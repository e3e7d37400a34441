//! Plain-text tables for the CLI: every column as wide as its widest cell,
//! so long device ids and release names never push the next column out of
//! line; two spaces between columns, the last one not padded. A note (an
//! error under a row) is indented under the second column and does not
//! widen any column.

enum Row {
    Cells(Vec<String>),
    Note(String),
}

/// A table being filled: headers, then rows of as many cells.
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![Row::Cells(headers.iter().map(|h| h.to_string()).collect())],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Row::Cells(cells));
    }

    /// A line under the last row, not part of any column.
    pub fn note(&mut self, text: String) {
        self.rows.push(Row::Note(text));
    }

    pub fn render(&self) -> String {
        let cells = || {
            self.rows.iter().filter_map(|r| match r {
                Row::Cells(c) => Some(c),
                Row::Note(_) => None,
            })
        };
        let columns = cells().map(Vec::len).max().unwrap_or(0);
        let width = |c: usize| {
            cells()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let mut out = String::new();
        for row in &self.rows {
            let row = match row {
                Row::Cells(row) => row,
                Row::Note(text) => {
                    let indent = widths.first().map_or(0, |w| w + 2);
                    out.extend(std::iter::repeat_n(' ', indent));
                    out.push_str(text);
                    out.push('\n');
                    continue;
                }
            };
            let last = row.len().saturating_sub(1);
            for (c, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if c < last {
                    let pad = widths[c] - cell.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&["DEVICE", "PHASE"]);
        t.row(vec![
            "pi-kitchen-sensor-0042-long-name".into(),
            "running".into(),
        ]);
        t.row(vec!["pi-1".into(), "downloading".into()]);
        t.note("error: a long message that must not widen the PHASE column at all".into());
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        let at = |l: &str, w: &str| l.find(w).unwrap();
        assert_eq!(at(lines[0], "PHASE"), at(lines[1], "running"));
        assert_eq!(at(lines[1], "running"), at(lines[2], "downloading"));
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{text}");
        assert_eq!(at(lines[3], "error"), at(lines[0], "PHASE"));
        assert_eq!(lines[0].len(), at(lines[0], "PHASE") + "PHASE".len());
    }
}
