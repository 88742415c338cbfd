//! How deep a policy document nests, measured on its text before a parser sees it.
//!
//! serde_json and serde_yaml_ng refuse values nested deeper than 128, but serde_yaml_ng does so
//! only after its scanner (libyaml, translated) has tokenised the whole input, and that scanner
//! is quadratic in flow nesting: a 200 KB `{a: {a: ...` costs about a minute of CPU. This scan
//! follows libyaml's tokeniser in one linear pass: it opens a level where libyaml rolls a block
//! indentation or opens a flow collection, and skips what libyaml skips (quoted and block
//! scalars, comments, plain scalars with their continuation lines). On text libyaml accepts
//! the count is never above the parsers' own depth, so nothing they would load is refused
//! here; past a point where libyaml reports an error the count does not matter, parsing stops
//! there. JSON is YAML's flow style, so one scan serves both.

/// Deepest nesting of collections a policy document may have: what serde_json and
/// serde_yaml_ng allow.
pub(crate) const MAX_NESTING: usize = 128;

/// The line (1-based) where `text` first nests deeper than [`MAX_NESTING`], if it does.
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    nesting(text, MAX_NESTING).err()
}

/// The deepest nesting of `text`, or the line where it goes past `limit`.
fn nesting(text: &str, limit: usize) -> Result<usize, usize> {
    let mut scan = Scan {
        b: text.as_bytes(),
        i: 0,
        index: 0,
        line: 1,
        col: 0,
        flow: 0,
        indent: -1,
        indents: Vec::new(),
        allowed: true,
        key: None,
        deepest: 0,
        limit,
    };
    scan.run()?;
    Ok(scan.deepest)
}

/// Where a possible simple key (`name` in `name: value`) of the block context starts.
#[derive(Clone, Copy)]
struct Key {
    col: i64,
    line: usize,
    index: usize,
}

/// libyaml's scanner state, as far as nesting needs it.
struct Scan<'t> {
    b: &'t [u8],
    /// Byte offset.
    i: usize,
    /// Characters so far, counted as libyaml counts them (CRLF is two).
    index: usize,
    line: usize,
    /// Characters since the line began.
    col: i64,
    /// Open flow collections.
    flow: usize,
    /// Column of the innermost block collection, -1 outside any.
    indent: i64,
    /// The enclosing indentations: one entry per open block collection.
    indents: Vec<i64>,
    /// libyaml's `simple_key_allowed` in the block context.
    allowed: bool,
    key: Option<Key>,
    deepest: usize,
    limit: usize,
}

/// Characters of anchor and alias names.
fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Characters of a tag (`!name`, `!handle!suffix`), as libyaml reads them.
fn is_tag_char(b: u8) -> bool {
    is_alpha(b) || b";/?:@&=+$.%!~*'()".contains(&b)
}

impl Scan<'_> {
    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn end(&self) -> bool {
        self.i >= self.b.len()
    }

    /// Length of the line break at offset `k`, 0 when there is none: CR, LF, CRLF, and the
    /// Unicode breaks NEL, LS and PS, which libyaml counts too.
    fn brk(&self, k: usize) -> usize {
        match (self.at(k), self.at(k + 1), self.at(k + 2)) {
            (b'\r', b'\n', _) => 2,
            (b'\r' | b'\n', _, _) => 1,
            (0xC2, 0x85, _) => 2,
            (0xE2, 0x80, 0xA8 | 0xA9) => 3,
            _ => 0,
        }
    }

    fn blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    /// A blank, a line break or the end of the text.
    fn blankz(&self, k: usize) -> bool {
        self.blank(k) || self.brk(k) > 0 || self.i + k >= self.b.len()
    }

    /// Moves past one character that is not a line break.
    fn skip(&mut self) {
        self.i += match self.at(0) {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        self.index += 1;
        self.col += 1;
    }

    /// Moves past a line break, if one is here.
    fn skip_line(&mut self) {
        let n = self.brk(0);
        if n > 0 {
            self.index += if n == 2 && self.at(0) == b'\r' { 2 } else { 1 };
            self.i += n;
            self.line += 1;
            self.col = 0;
        }
    }

    fn skip_to_break(&mut self) {
        while !self.end() && self.brk(0) == 0 {
            self.skip();
        }
    }

    /// `---` or `...` at the start of a line.
    fn document_marker(&self) -> bool {
        let rest = self.b.get(self.i..).unwrap_or(&[]);
        self.col == 0 && (rest.starts_with(b"---") || rest.starts_with(b"...")) && self.blankz(3)
    }

    /// One more level is open: fails past the limit.
    fn deeper(&mut self) -> Result<(), usize> {
        let depth = self.indents.len() + self.flow;
        self.deepest = self.deepest.max(depth);
        if depth > self.limit {
            Err(self.line)
        } else {
            Ok(())
        }
    }

    /// A block collection starts at `col` unless one is already open there.
    fn roll(&mut self, col: i64) -> Result<(), usize> {
        if self.indent < col {
            self.indents.push(self.indent);
            self.indent = col;
            self.deeper()?;
        }
        Ok(())
    }

    /// Closes the block collections indented more than `col`.
    fn unroll(&mut self, col: i64) {
        while self.indent > col {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    /// A token that may be a simple key starts here.
    fn save_key(&mut self) {
        if self.flow == 0 && self.allowed {
            self.key = Some(Key {
                col: self.col,
                line: self.line,
                index: self.index,
            });
        }
    }

    fn run(&mut self) -> Result<(), usize> {
        loop {
            self.skip_to_token();
            if self.end() {
                return Ok(());
            }
            if self.flow == 0 {
                self.unroll(self.col);
            }
            if self.col == 0 && self.at(0) == b'%' {
                self.skip_to_break();
                continue;
            }
            if self.document_marker() {
                self.unroll(-1);
                self.key = None;
                self.allowed = false;
                for _ in 0..3 {
                    self.skip();
                }
                continue;
            }
            match self.at(0) {
                b'[' | b'{' => {
                    self.save_key();
                    self.flow += 1;
                    self.deeper()?;
                    self.allowed = true;
                    self.skip();
                }
                b']' | b'}' => {
                    self.flow = self.flow.saturating_sub(1);
                    self.allowed = false;
                    self.skip();
                }
                b',' => {
                    self.allowed = true;
                    self.skip();
                }
                b'-' if self.blankz(1) => self.indicator()?,
                b'?' if self.flow > 0 || self.blankz(1) => self.indicator()?,
                b':' if self.flow > 0 || self.blankz(1) => {
                    if self.flow == 0 {
                        // The mapping starts at its first key, if that key is still possible
                        // (same line, within 1024 characters); else at the `:` itself.
                        let (line, index) = (self.line, self.index);
                        let col = self
                            .key
                            .take()
                            .filter(|k| k.line == line && k.index + 1024 >= index)
                            .map_or(self.col, |k| k.col);
                        self.roll(col)?;
                    }
                    self.allowed = self.flow == 0;
                    self.skip();
                }
                b'*' | b'&' => {
                    self.save_key();
                    self.allowed = false;
                    self.skip();
                    while is_alpha(self.at(0)) {
                        self.skip();
                    }
                }
                b'!' => {
                    self.save_key();
                    self.allowed = false;
                    self.tag();
                }
                b'|' | b'>' if self.flow == 0 => {
                    self.key = None;
                    self.allowed = true;
                    self.block_scalar();
                }
                q @ (b'\'' | b'"') => {
                    self.save_key();
                    self.allowed = false;
                    self.quoted(q);
                }
                _ => {
                    self.save_key();
                    self.allowed = false;
                    self.plain();
                }
            }
        }
    }

    /// Spaces, tabs, comments and line breaks between tokens.
    fn skip_to_token(&mut self) {
        loop {
            if self.col == 0
                && self
                    .b
                    .get(self.i..)
                    .unwrap_or(&[])
                    .starts_with(b"\xEF\xBB\xBF")
            {
                self.skip();
            }
            while self.blank(0) {
                self.skip();
            }
            if self.at(0) == b'#' {
                self.skip_to_break();
            }
            if self.brk(0) == 0 {
                return;
            }
            self.skip_line();
            if self.flow == 0 {
                self.allowed = true;
            }
        }
    }

    /// `- ` (a sequence entry) or `? ` (a complex key).
    fn indicator(&mut self) -> Result<(), usize> {
        if self.flow == 0 {
            self.roll(self.col)?;
            self.key = None;
        }
        self.allowed = true;
        self.skip();
        Ok(())
    }

    /// `!tag`, `!handle!suffix` or `!<verbatim>`.
    fn tag(&mut self) {
        self.skip();
        if self.at(0) == b'<' {
            while !self.end() && self.at(0) != b'>' && !self.blankz(0) {
                self.skip();
            }
            if self.at(0) == b'>' {
                self.skip();
            }
        } else {
            while is_tag_char(self.at(0)) {
                self.skip();
            }
        }
    }

    /// `'...'` (with `''` for a quote) or `"..."` (with backslash escapes), over any lines.
    fn quoted(&mut self, quote: u8) {
        self.skip();
        while !self.end() {
            if self.brk(0) > 0 {
                self.skip_line();
                continue;
            }
            let c = self.at(0);
            if quote == b'"' && c == b'\\' {
                self.skip();
                if self.brk(0) > 0 {
                    self.skip_line();
                } else if !self.end() {
                    self.skip();
                }
                continue;
            }
            self.skip();
            if c == quote {
                if quote == b'\'' && self.at(0) == b'\'' {
                    self.skip();
                    continue;
                }
                return;
            }
        }
    }

    /// `|` or `>`, its header, then every line indented at least as its content is.
    fn block_scalar(&mut self) {
        self.skip();
        let mut increment = 0;
        for _ in 0..2 {
            match self.at(0) {
                b'+' | b'-' => self.skip(),
                d @ b'1'..=b'9' => {
                    increment = i64::from(d - b'0');
                    self.skip();
                }
                _ => break,
            }
        }
        self.skip_to_break();
        self.skip_line();
        let mut indent = match increment {
            0 => 0,
            m if self.indent >= 0 => self.indent + m,
            m => m,
        };
        self.block_breaks(&mut indent);
        while self.col == indent && !self.end() {
            self.skip_to_break();
            self.skip_line();
            self.block_breaks(&mut indent);
        }
    }

    /// Blank lines and the indentation of the next one; without an explicit indentation, the
    /// content's is set by its first line (at least one more than the enclosing collection).
    fn block_breaks(&mut self, indent: &mut i64) {
        let mut max = 0;
        loop {
            while (*indent == 0 || self.col < *indent) && self.at(0) == b' ' {
                self.skip();
            }
            max = max.max(self.col);
            if self.brk(0) == 0 {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max.max(self.indent + 1).max(1);
        }
    }

    /// A plain scalar, with the continuation lines indented more than its collection.
    fn plain(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.document_marker() || self.at(0) == b'#' {
                break;
            }
            while !self.blankz(0) {
                let c = self.at(0);
                let ends_flow = |b: u8| matches!(b, b',' | b'[' | b']' | b'{' | b'}');
                if (c == b':' && (self.blankz(1) || (self.flow > 0 && ends_flow(self.at(1)))))
                    || (self.flow > 0 && ends_flow(c))
                {
                    break;
                }
                leading_blanks = false;
                self.skip();
            }
            if !(self.blank(0) || self.brk(0) > 0) {
                break;
            }
            while self.blank(0) || self.brk(0) > 0 {
                if self.blank(0) {
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if self.flow == 0 && self.col < indent {
                break;
            }
        }
        if leading_blanks {
            self.allowed = true;
        }
    }
}

#[cfg(test)]
mod tests;
