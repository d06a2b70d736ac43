//! The BFD control packet (RFC 5880 §4.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`ControlPacket::parse`] applies every context-free check of RFC 5880 §6.8.6 and
//! returns a [`ParseError`] for the first one that fails; it never panics. The checks that
//! need a session (which session a nonzero Your Discriminator selects, the TTL) are done
//! by [`crate::session::Session::handle_datagram`].
//!
//! **Authentication is not supported**: a packet with the A bit set has its
//! authentication section header (type, length) checked for consistency and is then
//! rejected with [`ParseError::AuthenticationNotSupported`], as RFC 5880 §6.8.6 requires
//! of a system that has no authentication configured (`bfd.AuthType` zero). We never
//! set the A bit.

use thiserror::Error;

/// The protocol version we speak.
pub const VERSION: u8 = 1;
/// Length of the mandatory section, and of every packet we build.
pub const PACKET_LEN: usize = 24;
/// Minimum length of a packet carrying the authentication header (type + length).
const AUTH_MIN_LEN: usize = PACKET_LEN + 2;

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CPI: u8 = 0x08;
const FLAG_AUTH: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// Session state as carried on the wire (RFC 5880 §4.1, §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Administratively down (0).
    AdminDown,
    /// Down (1).
    Down,
    /// Init (2).
    Init,
    /// Up (3).
    Up,
}

impl State {
    /// The 2-bit wire value.
    pub fn to_bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// From the 2-bit wire value (the upper bits are ignored).
    pub fn from_bits(bits: u8) -> State {
        match bits & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

/// Diagnostic code (RFC 5880 §4.1): the sender's reason for its last state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0: no diagnostic.
    None,
    /// 1: control detection time expired.
    ControlDetectionTimeExpired,
    /// 2: echo function failed.
    EchoFunctionFailed,
    /// 3: neighbor signaled session down.
    NeighborSignaledDown,
    /// 4: forwarding plane reset.
    ForwardingPlaneReset,
    /// 5: path down.
    PathDown,
    /// 6: concatenated path down.
    ConcatenatedPathDown,
    /// 7: administratively down.
    AdministrativelyDown,
    /// 8: reverse concatenated path down.
    ReverseConcatenatedPathDown,
    /// 9-31: reserved values, kept as received.
    Reserved(u8),
}

impl Diag {
    /// The 5-bit wire value.
    pub fn to_bits(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(v) => v & 0x1f,
        }
    }

    /// From the 5-bit wire value (the upper bits are ignored).
    pub fn from_bits(bits: u8) -> Diag {
        match bits & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            v => Diag::Reserved(v),
        }
    }
}

/// Why a received packet was discarded by [`ControlPacket::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Fewer bytes than the 24-byte mandatory section.
    #[error("packet too short: {len} bytes, need at least {PACKET_LEN}")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Version field is not 1 (§6.8.6).
    #[error("unsupported BFD version {0}")]
    BadVersion(u8),
    /// Length field below 24, or below 26 with the A bit set (§6.8.6).
    #[error("length field {length} too small (minimum {min})")]
    LengthTooSmall {
        /// The Length field.
        length: u8,
        /// The minimum for this packet.
        min: usize,
    },
    /// Length field greater than the UDP payload (§6.8.6).
    #[error("length field {length} exceeds the {payload}-byte payload")]
    LengthExceedsPayload {
        /// The Length field.
        length: u8,
        /// Bytes received.
        payload: usize,
    },
    /// Detect Mult is zero (§6.8.6).
    #[error("detect multiplier is zero")]
    ZeroDetectMult,
    /// The Multipoint bit is set (§6.8.6).
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator is zero (§6.8.6).
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while State is Init or Up (§6.8.6).
    #[error("your discriminator is zero in state {0:?}")]
    ZeroYourDiscriminator(State),
    /// Poll and Final both set (forbidden by §4.1 and §6.5).
    #[error("poll and final bits both set")]
    PollAndFinal,
    /// The authentication section does not fit the Length field.
    #[error("authentication section length {auth_len} does not fit packet length {length}")]
    BadAuthLength {
        /// The Auth Len field.
        auth_len: u8,
        /// The Length field.
        length: u8,
    },
    /// A bit set: authentication is not supported, so the packet is discarded (§6.8.6).
    #[error("authentication type {auth_type} not supported")]
    AuthenticationNotSupported {
        /// The Auth Type field.
        auth_type: u8,
    },
}

/// A BFD control packet, mandatory section (no authentication).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    /// Diagnostic code.
    pub diag: Diag,
    /// Sender's session state.
    pub state: State,
    /// P: the sender requests verification of a parameter change.
    pub poll: bool,
    /// F: the sender answers a Poll.
    pub final_: bool,
    /// C: control plane independent.
    pub control_plane_independent: bool,
    /// D: the sender wishes to run Demand mode.
    pub demand: bool,
    /// Detection time multiplier.
    pub detect_mult: u8,
    /// Sender's discriminator (nonzero).
    pub my_discriminator: u32,
    /// Receiver's discriminator as known by the sender, or zero.
    pub your_discriminator: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, microseconds (zero: no echo).
    pub required_min_echo_rx_us: u32,
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    match buf.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

impl ControlPacket {
    /// Parses a UDP payload, applying the context-free RFC 5880 §6.8.6 checks in the
    /// RFC's order. Bytes beyond the Length field are ignored.
    pub fn parse(buf: &[u8]) -> Result<ControlPacket, ParseError> {
        let Some(head) = buf.get(..PACKET_LEN) else {
            return Err(ParseError::Truncated { len: buf.len() });
        };
        let [b0, b1, detect_mult, length, ..] = *head else {
            return Err(ParseError::Truncated { len: buf.len() });
        };
        let version = b0 >> 5;
        if version != VERSION {
            return Err(ParseError::BadVersion(version));
        }
        let auth = b1 & FLAG_AUTH != 0;
        let min = if auth { AUTH_MIN_LEN } else { PACKET_LEN };
        if usize::from(length) < min {
            return Err(ParseError::LengthTooSmall { length, min });
        }
        if usize::from(length) > buf.len() {
            return Err(ParseError::LengthExceedsPayload {
                length,
                payload: buf.len(),
            });
        }
        if detect_mult == 0 {
            return Err(ParseError::ZeroDetectMult);
        }
        if b1 & FLAG_MULTIPOINT != 0 {
            return Err(ParseError::Multipoint);
        }
        let my_discriminator = u32_at(head, 4);
        if my_discriminator == 0 {
            return Err(ParseError::ZeroMyDiscriminator);
        }
        let your_discriminator = u32_at(head, 8);
        let state = State::from_bits(b1 >> 6);
        if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(ParseError::ZeroYourDiscriminator(state));
        }
        let poll = b1 & FLAG_POLL != 0;
        let final_ = b1 & FLAG_FINAL != 0;
        if poll && final_ {
            return Err(ParseError::PollAndFinal);
        }
        if auth {
            let auth_type = buf.get(PACKET_LEN).copied().unwrap_or(0);
            let auth_len = buf.get(PACKET_LEN + 1).copied().unwrap_or(0);
            if auth_len < 2 || PACKET_LEN + usize::from(auth_len) > usize::from(length) {
                return Err(ParseError::BadAuthLength { auth_len, length });
            }
            return Err(ParseError::AuthenticationNotSupported { auth_type });
        }
        Ok(ControlPacket {
            diag: Diag::from_bits(b0),
            state,
            poll,
            final_,
            control_plane_independent: b1 & FLAG_CPI != 0,
            demand: b1 & FLAG_DEMAND != 0,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx_us: u32_at(head, 12),
            required_min_rx_us: u32_at(head, 16),
            required_min_echo_rx_us: u32_at(head, 20),
        })
    }

    /// Builds the 24-byte wire form (version 1, no authentication, M clear). Does not
    /// validate: a packet with, say, a zero discriminator is built as given.
    pub fn build(&self) -> [u8; PACKET_LEN] {
        let mut out = [0u8; PACKET_LEN];
        let mut flags = self.state.to_bits() << 6;
        if self.poll {
            flags |= FLAG_POLL;
        }
        if self.final_ {
            flags |= FLAG_FINAL;
        }
        if self.control_plane_independent {
            flags |= FLAG_CPI;
        }
        if self.demand {
            flags |= FLAG_DEMAND;
        }
        out[0] = (VERSION << 5) | self.diag.to_bits();
        out[1] = flags;
        out[2] = self.detect_mult;
        out[3] = PACKET_LEN as u8;
        out[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        out[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        out[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        out[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        out[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        out
    }
}
