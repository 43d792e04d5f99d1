//! A minimal ustar writer: directories, regular files and symlinks, enough for a build context.

const BLOCK: usize = 512;

#[derive(Default)]
pub struct Builder {
    out: Vec<u8>,
}

fn octal(field: &mut [u8], value: u64) {
    // width-1 octal digits, then NUL.
    let digits = format!("{:0width$o}", value, width = field.len() - 1);
    let bytes = digits.as_bytes();
    let width = field.len() - 1;
    let start = bytes.len().saturating_sub(width);
    field[..width].copy_from_slice(&bytes[start..]);
    field[width] = 0;
}

impl Builder {
    fn header(&mut self, path: &str, mode: u32, size: u64, kind: u8, link: &str) {
        let mut header = [0u8; BLOCK];
        let (prefix, name) = if path.len() > 100 {
            match path.rfind('/') {
                Some(i) if i <= 155 && path.len() - i - 1 <= 100 => (&path[..i], &path[i + 1..]),
                _ => ("", path),
            }
        } else {
            ("", path)
        };
        let name = &name.as_bytes()[..name.len().min(100)];
        header[..name.len()].copy_from_slice(name);
        octal(&mut header[100..108], u64::from(mode));
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], size);
        octal(&mut header[136..148], 0);
        header[156] = kind;
        let link = &link.as_bytes()[..link.len().min(100)];
        header[157..157 + link.len()].copy_from_slice(link);
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        let prefix = &prefix.as_bytes()[..prefix.len().min(155)];
        header[345..345 + prefix.len()].copy_from_slice(prefix);
        header[148..156].copy_from_slice(b"        ");
        let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
        let checksum = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(checksum.as_bytes());
        self.out.extend_from_slice(&header);
    }

    pub fn directory(&mut self, path: &str, mode: u32) {
        self.header(&format!("{path}/"), mode, 0, b'5', "");
    }

    pub fn file(&mut self, path: &str, contents: &[u8], mode: u32) {
        self.header(path, mode, contents.len() as u64, b'0', "");
        self.out.extend_from_slice(contents);
        let padding = (BLOCK - contents.len() % BLOCK) % BLOCK;
        self.out.extend(std::iter::repeat_n(0u8, padding));
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.header(path, 0o777, 0, b'2', target);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 2 * BLOCK));
        self.out
    }
}
