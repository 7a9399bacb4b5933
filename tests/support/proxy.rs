//! A TCP proxy a test puts between the service and Postgres or Redis, to make the network fail
//! in the ways real ones do: cut (every connection dropped, new ones refused; or dropped on the
//! client's side only, the server's left open and hearing nothing), stalled (nothing
//! forwarded in either direction, connections left open: a frozen middlebox), holding one reply
//! or request (the first server reply, or client message, that contains a marker is held back,
//! with everything after it on that connection, until released: a read paused between its row and
//! what it does next, a statement slow to reach the server), or cutting
//! a connection right after forwarding a client message that contains a marker (a commit sent,
//! its answer lost), or sending new connections to another server while the old ones stay (an
//! address moved to a new primary by a failover).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    /// The port of the server new connections go to.
    upstream: AtomicU16,
    refusing: AtomicBool,
    /// `true` while stalled; relays wait for it to turn `false`.
    stalled: Mutex<Option<watch::Sender<bool>>>,
    stall_watch: Mutex<Option<watch::Receiver<bool>>>,
    relays: Mutex<Vec<JoinHandle<()>>>,
    /// A second descriptor of each open connection's server side, by connection, so that
    /// aborting a relay does not close it: after `cut_leaving_servers_connected` the server hears
    /// of the cut only when these go (`close_server_sides`, `cut`, drop). A relay that ends by
    /// itself removes its own.
    server_sides: Mutex<HashMap<u64, std::net::TcpStream>>,
    connections: AtomicU64,
    /// The direction and marker of the first message to hold, and whether it was seen.
    hold_marker: Mutex<Option<(Direction, Vec<u8>)>>,
    holding: Notify,
    held: AtomicBool,
    release: Notify,
    released: AtomicBool,
    /// The marker after whose client message the connection is cut.
    cut_after: Mutex<Option<Vec<u8>>>,
    /// Whether every connection stalls as that cut is made.
    stall_at_cut: AtomicBool,
    cut_done: Notify,
}

impl Proxy {
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("the proxy binds");
        let port = listener.local_addr().expect("the proxy has an address").port();
        let (stall_sender, stall_receiver) = watch::channel(false);
        let shared = Arc::new(Shared::default());
        shared.upstream.store(upstream_port, Ordering::SeqCst);
        *shared.stalled.lock().unwrap() = Some(stall_sender);
        *shared.stall_watch.lock().unwrap() = Some(stall_receiver);
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accept_shared.refusing.load(Ordering::SeqCst) {
                    continue; // dropped at once: the connection is refused
                }
                let relay_shared = accept_shared.clone();
                let upstream = accept_shared.upstream.load(Ordering::SeqCst);
                let relay = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let connection = relay_shared.connections.fetch_add(1, Ordering::SeqCst);
                    if let Some(server) = keep_server_side(connection, server, &relay_shared) {
                        relay_connection(client, server, relay_shared.clone()).await;
                    }
                    relay_shared.server_sides.lock().unwrap().remove(&connection);
                });
                accept_shared.relays.lock().unwrap().push(relay);
            }
        });
        Proxy { port, shared, accept }
    }

    /// Drops every connection and refuses new ones: the server is gone.
    pub fn cut(&self) {
        self.cut_leaving_servers_connected();
        self.shared.server_sides.lock().unwrap().clear();
    }

    /// Drops every connection on the client's side only, and refuses new ones: the server's side
    /// stays open and hears nothing (a NAT or firewall between them that forgot the connections),
    /// until `close_server_sides`. `restore` accepts connections again.
    pub fn cut_leaving_servers_connected(&self) {
        self.shared.refusing.store(true, Ordering::SeqCst);
        for relay in self.shared.relays.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    /// Refuses new connections; those open stay and forward as before (a server that takes no
    /// more, or a path that lets no new one through). `restore` ends it.
    pub fn refuse_new(&self) {
        self.shared.refusing.store(true, Ordering::SeqCst);
    }

    /// Sends new connections to the server on `port`; those open stay where they are.
    pub fn redirect(&self, port: u16) {
        self.shared.upstream.store(port, Ordering::SeqCst);
    }

    /// Accepts connections again after a cut or `refuse_new`.
    pub fn restore(&self) {
        self.shared.refusing.store(false, Ordering::SeqCst);
    }

    /// Closes the server's side of the connections a cut left open.
    pub fn close_server_sides(&self) {
        self.shared.server_sides.lock().unwrap().clear();
    }

    /// Stops forwarding anything, in both directions, on every connection (new ones too).
    pub fn stall(&self) {
        self.set_stalled(true);
    }

    /// Forwards again, in order, what was held while stalled.
    pub fn resume(&self) {
        self.set_stalled(false);
    }

    fn set_stalled(&self, stalled: bool) {
        if let Some(sender) = self.shared.stalled.lock().unwrap().as_ref() {
            sender.send_replace(stalled);
        }
    }

    /// Holds back the first server reply that contains `marker` (and everything after it on that
    /// connection) until `release`.
    pub fn hold_reply_containing(&self, marker: &[u8]) {
        self.hold(Direction::ToClient, marker);
    }

    /// Holds back the first client message that contains `marker` (and everything after it on
    /// that connection) until `release`: the server has not seen it.
    pub fn hold_request_containing(&self, marker: &[u8]) {
        self.hold(Direction::ToServer, marker);
    }

    fn hold(&self, direction: Direction, marker: &[u8]) {
        self.shared.held.store(false, Ordering::SeqCst);
        self.shared.released.store(false, Ordering::SeqCst);
        *self.shared.hold_marker.lock().unwrap() = Some((direction, marker.to_vec()));
    }

    /// Waits until a reply is being held.
    pub async fn holding(&self) {
        loop {
            let notified = self.shared.holding.notified();
            if self.shared.held.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Lets the held reply go on.
    pub fn release(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
        self.shared.release.notify_waiters();
    }

    /// Cuts the connection right after forwarding the first client message that contains
    /// `marker`: the server gets it, the client never hears back.
    pub fn cut_after_client_sends(&self, marker: &[u8]) {
        *self.shared.cut_after.lock().unwrap() = Some(marker.to_vec());
    }

    /// As `cut_after_client_sends`, and every other connection stalls at that moment (new ones
    /// too): the server can no longer be reached, until `resume`.
    pub fn cut_after_client_sends_then_stall(&self, marker: &[u8]) {
        self.shared.stall_at_cut.store(true, Ordering::SeqCst);
        self.cut_after_client_sends(marker);
    }

    /// Waits until `cut_after_client_sends` has cut.
    pub async fn cut_done(&self) {
        loop {
            let notified = self.shared.cut_done.notified();
            if self.shared.cut_after.lock().unwrap().is_none() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for relay in self.shared.relays.lock().unwrap().drain(..) {
            relay.abort();
        }
    }
}

/// `server`, with a second descriptor of it kept in `shared.server_sides`.
fn keep_server_side(connection: u64, server: TcpStream, shared: &Shared) -> Option<TcpStream> {
    let server = server.into_std().ok()?;
    let second = server.try_clone().ok()?;
    shared.server_sides.lock().unwrap().insert(connection, second);
    TcpStream::from_std(server).ok()
}

async fn relay_connection(client: TcpStream, mut server: TcpStream, shared: Arc<Shared>) {
    let (client_read, client_write) = client.into_split();
    // Borrowed halves: an owned write half shuts the socket down when dropped, which would send
    // the server a FIN when a cut aborts the relay, even with `server_sides` holding it open.
    let (server_read, server_write) = server.split();
    let stall = shared
        .stall_watch
        .lock()
        .unwrap()
        .clone()
        .expect("the stall watch exists");
    let upstream = pump(
        client_read,
        server_write,
        shared.clone(),
        stall.clone(),
        Direction::ToServer,
    );
    let downstream = pump(server_read, client_write, shared, stall, Direction::ToClient);
    // Either side closing ends the connection; the other direction is dropped with it.
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    shared: Arc<Shared>,
    mut stall: watch::Receiver<bool>,
    direction: Direction,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    // The tail of the previous chunk, so a marker split across two reads is still found.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                // A stalled path (a frozen middlebox, a partition) forwards no FIN either.
                while *stall.borrow_and_update() {
                    if stall.changed().await.is_err() {
                        return;
                    }
                }
                return;
            }
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        let mut window = std::mem::take(&mut tail);
        window.extend_from_slice(chunk);
        tail = window[window.len().saturating_sub(64)..].to_vec();
        // A stall holds whatever arrives until it is lifted.
        while *stall.borrow_and_update() {
            if stall.changed().await.is_err() {
                return;
            }
        }
        if take_hold(&shared.hold_marker, direction, &window) {
            shared.held.store(true, Ordering::SeqCst);
            shared.holding.notify_waiters();
            loop {
                let released = shared.release.notified();
                if shared.released.load(Ordering::SeqCst) {
                    break;
                }
                released.await;
            }
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
        if direction == Direction::ToServer && take_marker(&shared.cut_after, &window) {
            let _ = to.flush().await;
            if shared.stall_at_cut.swap(false, Ordering::SeqCst)
                && let Some(stalled) = shared.stalled.lock().unwrap().as_ref()
            {
                stalled.send_replace(true);
            }
            shared.cut_done.notify_waiters();
            return;
        }
    }
}

/// Whether `window`, going `direction`, contains the armed hold's marker; disarms it when it does.
fn take_hold(hold: &Mutex<Option<(Direction, Vec<u8>)>>, direction: Direction, window: &[u8]) -> bool {
    let mut armed = hold.lock().unwrap();
    let found = armed.as_ref().is_some_and(|(held_direction, marker)| {
        *held_direction == direction && window.windows(marker.len()).any(|part| part == marker.as_slice())
    });
    if found {
        *armed = None;
    }
    found
}

/// Whether `window` contains the armed marker; disarms it when it does.
fn take_marker(marker: &Mutex<Option<Vec<u8>>>, window: &[u8]) -> bool {
    let mut armed = marker.lock().unwrap();
    let found = armed
        .as_ref()
        .is_some_and(|marker| window.windows(marker.len()).any(|part| part == marker.as_slice()));
    if found {
        *armed = None;
    }
    found
}
