//! The lexer and parser of the label selector string syntax.
//!
//! Grammar: `selector := requirement (',' requirement)*`, `requirement := '!' key | key |
//! key ('=' | '==' | '!=') value? | key ('in' | 'notin') '(' values ')' | key ('>' | '<') int`.
//! Invariant: tokenising never fails; the parser reports the first token it cannot use.

use super::label::{Operator, Requirement};
use super::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Identifier(String),
    Not,
    NotEquals,
    Equals,
    DoubleEquals,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    Greater,
    Less,
    End,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Self::Identifier(text) => text.clone(),
            Self::Not => "!".into(),
            Self::NotEquals => "!=".into(),
            Self::Equals => "=".into(),
            Self::DoubleEquals => "==".into(),
            Self::In => "in".into(),
            Self::NotIn => "notin".into(),
            Self::Open => "(".into(),
            Self::Close => ")".into(),
            Self::Comma => ",".into(),
            Self::Greater => ">".into(),
            Self::Less => "<".into(),
            Self::End => String::new(),
        }
    }
}

fn is_special(character: char) -> bool {
    character.is_whitespace() || "(),!=<>".contains(character)
}

/// Split a selector string into tokens, ending with [`Token::End`].
pub(super) fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        let token = match character {
            c if c.is_whitespace() => continue,
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            '>' => Token::Greater,
            '<' => Token::Less,
            '!' if characters.peek() == Some(&'=') => {
                characters.next();
                Token::NotEquals
            }
            '!' => Token::Not,
            '=' if characters.peek() == Some(&'=') => {
                characters.next();
                Token::DoubleEquals
            }
            '=' => Token::Equals,
            first => {
                let mut word = first.to_string();
                while let Some(next) = characters.peek().copied().filter(|c| !is_special(*c)) {
                    word.push(next);
                    characters.next();
                }
                match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Identifier(word),
                }
            }
        };
        tokens.push(token);
    }
    tokens.push(Token::End);
    tokens
}

struct Parser<'a> {
    tokens: &'a [Token],
    position: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.tokens.get(self.position).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        self.position += 1;
        token
    }

    fn unexpected(token: &Token, expected: &str) -> Error {
        Error::UnexpectedToken {
            found: token.text(),
            expected: expected.to_string(),
        }
    }

    fn requirement(&mut self) -> Result<Requirement> {
        let key = match self.next() {
            Token::Not => match self.next() {
                Token::Identifier(key) => {
                    return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
                }
                other => return Err(Self::unexpected(&other, "identifier")),
            },
            Token::Identifier(key) => key,
            other => return Err(Self::unexpected(&other, "identifier")),
        };
        let operator = match self.peek() {
            Token::Comma | Token::End => {
                return Requirement::new(&key, Operator::Exists, Vec::new());
            }
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Greater => Operator::GreaterThan,
            Token::Less => Operator::LessThan,
            other => return Err(Self::unexpected(other, "'=', '!=', '==', 'in', 'notin'")),
        };
        self.next();
        let values = match operator {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => match self.peek() {
                Token::Identifier(value) => {
                    let value = value.clone();
                    self.next();
                    vec![value]
                }
                Token::Comma | Token::End => vec![String::new()],
                other => return Err(Self::unexpected(other, "identifier")),
            },
        };
        Requirement::new(&key, operator, values)
    }

    fn set_values(&mut self) -> Result<Vec<String>> {
        match self.next() {
            Token::Open => {}
            other => return Err(Self::unexpected(&other, "'('")),
        }
        let mut values = Vec::new();
        let mut current: Option<String> = None;
        loop {
            match self.next() {
                Token::Identifier(value) if current.is_none() => current = Some(value),
                Token::Comma => values.push(current.take().unwrap_or_default()),
                Token::Close => {
                    values.push(current.take().unwrap_or_default());
                    return Ok(values);
                }
                other => return Err(Self::unexpected(&other, "',', ')' or identifier")),
            }
        }
    }
}

/// Parse tokens into requirements (unsorted).
pub(super) fn parse(tokens: &[Token]) -> Result<Vec<Requirement>> {
    let mut parser = Parser {
        tokens,
        position: 0,
    };
    let mut requirements = Vec::new();
    if parser.peek() == &Token::End {
        return Ok(requirements);
    }
    loop {
        requirements.push(parser.requirement()?);
        match parser.next() {
            Token::End => return Ok(requirements),
            Token::Comma => {}
            other => return Err(Parser::unexpected(&other, "','")),
        }
    }
}
