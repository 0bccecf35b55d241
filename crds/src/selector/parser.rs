//! Tokenizer and recursive-descent parser of the selector language.
//!
//! Pure. Owns the grammar and its error messages, which give the 1-based column of the
//! offending token and what was expected there:
//!
//! ```text
//! expr    := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!" unary | primary
//! primary := "(" expr ")" | "all" "(" ")" | "has" "(" key ")" | key op
//! op      := "==" str | "!=" str | "in" set | "not" "in" set
//!          | "contains" str | "starts" "with" str | "ends" "with" str
//! set     := "{" [ str ( "," str )* ] "}"
//! str     := '...' | "..."          (no escapes)
//! key     := [A-Za-z0-9_./-]+        (a label key, prefix included)
//! ```

use std::collections::BTreeSet;
use std::fmt;

use super::Expr;

/// A selector that does not parse: where, what was expected, what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: expected {expected}, found {found}")]
pub struct SelectorError {
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
    /// What the grammar allows there.
    pub expected: String,
    /// What is there instead.
    pub found: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    AndAnd,
    OrOr,
    Bang,
    EqEq,
    NotEq,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::LBrace => f.write_str("`{`"),
            Tok::RBrace => f.write_str("`}`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::AndAnd => f.write_str("`&&`"),
            Tok::OrOr => f.write_str("`||`"),
            Tok::Bang => f.write_str("`!`"),
            Tok::EqEq => f.write_str("`==`"),
            Tok::NotEq => f.write_str("`!=`"),
            Tok::End => f.write_str("end of selector"),
        }
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

/// Splits the text into (token, 1-based column) pairs, ending with `End`.
fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, SelectorError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let next = chars.get(i + 1).copied();
        let two = |t: Tok| (t, 2);
        let (tok, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            ',' => (Tok::Comma, 1),
            '&' if next == Some('&') => two(Tok::AndAnd),
            '|' if next == Some('|') => two(Tok::OrOr),
            '=' if next == Some('=') => two(Tok::EqEq),
            '!' if next == Some('=') => two(Tok::NotEq),
            '!' => (Tok::Bang, 1),
            '\'' | '"' => {
                let body: String = chars[i + 1..].iter().take_while(|&&x| x != c).collect();
                let body_len = body.chars().count();
                if i + 1 + body_len >= chars.len() {
                    return Err(SelectorError {
                        column: col,
                        expected: format!("a closing {c}"),
                        found: "end of selector".to_string(),
                    });
                }
                (Tok::Str(body), body_len + 2)
            }
            c if is_key_char(c) => {
                let word: String = chars[i..].iter().take_while(|&&x| is_key_char(x)).collect();
                let n = word.chars().count();
                (Tok::Ident(word), n)
            }
            other => {
                return Err(SelectorError {
                    column: col,
                    expected: "a label key, `!`, `(`, `&&`, `||`, `==`, `!=` or a quoted string"
                        .to_string(),
                    found: format!("`{other}`"),
                });
            }
        };
        out.push((tok, col));
        i += len;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |(t, _)| t)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        self.toks
            .get(self.pos + ahead)
            .map_or(&Tok::End, |(t, _)| t)
    }

    fn column(&self) -> usize {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .map_or(1, |(_, c)| *c)
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self, expected: &str) -> SelectorError {
        SelectorError {
            column: self.column(),
            expected: expected.to_string(),
            found: self.peek().to_string(),
        }
    }

    fn expect(&mut self, want: Tok, expected: &str) -> Result<(), SelectorError> {
        if *self.peek() == want {
            self.bump();
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<(), SelectorError> {
        if matches!(self.peek(), Tok::Ident(w) if w == word) {
            self.bump();
            Ok(())
        } else {
            Err(self.error(&format!("`{word}`")))
        }
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            Tok::Str(s) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => Err(self.error("a quoted string")),
        }
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        let mut items = vec![self.and()?];
        while *self.peek() == Tok::OrOr {
            self.bump();
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut items = vec![self.unary()?];
        while *self.peek() == Tok::AndAnd {
            self.bump();
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        if *self.peek() == Tok::Bang {
            self.bump();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SelectorError> {
        match self.peek().clone() {
            Tok::LParen => {
                self.bump();
                let e = self.or()?;
                self.expect(Tok::RParen, "`)` or an operator (`&&`, `||`)")?;
                Ok(e)
            }
            Tok::Ident(w) if w == "all" && *self.peek_at(1) == Tok::LParen => {
                self.bump();
                self.bump();
                self.expect(Tok::RParen, "`)` (all() takes no argument)")?;
                Ok(Expr::All)
            }
            Tok::Ident(w) if w == "has" && *self.peek_at(1) == Tok::LParen => {
                self.bump();
                self.bump();
                let key = match self.bump() {
                    Tok::Ident(k) => k,
                    _ => {
                        self.pos -= 1;
                        return Err(self.error("a label key inside has()"));
                    }
                };
                self.expect(Tok::RParen, "`)` closing has(")?;
                Ok(Expr::Has(key))
            }
            Tok::Ident(key) => {
                self.bump();
                self.operation(key)
            }
            _ => Err(self.error("a label key, `all()`, `has(`, `!` or `(`")),
        }
    }

    fn operation(&mut self, key: String) -> Result<Expr, SelectorError> {
        match self.peek().clone() {
            Tok::EqEq => {
                self.bump();
                Ok(Expr::Eq(key, self.string()?))
            }
            Tok::NotEq => {
                self.bump();
                Ok(Expr::Ne(key, self.string()?))
            }
            Tok::Ident(w) => match w.as_str() {
                "in" => {
                    self.bump();
                    Ok(Expr::In(key, self.set()?))
                }
                "not" => {
                    self.bump();
                    self.expect_word("in")?;
                    Ok(Expr::NotIn(key, self.set()?))
                }
                "contains" => {
                    self.bump();
                    Ok(Expr::Contains(key, self.string()?))
                }
                "starts" => {
                    self.bump();
                    self.expect_word("with")?;
                    Ok(Expr::StartsWith(key, self.string()?))
                }
                "ends" => {
                    self.bump();
                    self.expect_word("with")?;
                    Ok(Expr::EndsWith(key, self.string()?))
                }
                _ => Err(self.error(OPERATORS)),
            },
            _ => Err(self.error(OPERATORS)),
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        self.expect(Tok::LBrace, "`{` starting a set of strings")?;
        let mut out = BTreeSet::new();
        if *self.peek() == Tok::RBrace {
            self.bump();
            return Ok(out);
        }
        loop {
            out.insert(self.string()?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBrace => {
                    self.bump();
                    return Ok(out);
                }
                _ => return Err(self.error("`,` or `}`")),
            }
        }
    }
}

const OPERATORS: &str = "an operator after the label key (`==`, `!=`, `in`, `not in`, `contains`, `starts with`, `ends with`)";

/// Parses selector text into an expression; blank text is `all()`.
pub fn parse(text: &str) -> Result<Expr, SelectorError> {
    let toks = tokenize(text)?;
    let mut p = Parser { toks, pos: 0 };
    if *p.peek() == Tok::End {
        return Ok(Expr::All);
    }
    let e = p.or()?;
    if *p.peek() != Tok::End {
        return Err(p.error("`&&`, `||` or the end of the selector"));
    }
    Ok(e)
}
