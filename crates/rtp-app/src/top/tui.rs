//! The live view: a table of channels, the selected channel's detail pane, a key line.
//!
//! The terminal is put back on every way out: [`TerminalGuard`]'s drop on return (q, -t, a
//! signal, an error), and a panic hook installed before raw mode that restores first and then
//! lets the default hook print, so the message lands on a normal screen.

use super::sample::Channels;
use super::view::{self, Row, COLUMNS};
use anyhow::{Context, Result};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::{Constraint, Layout};
use ratatui::prelude::CrosstermBackend;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row as TableRow, Table, TableState};
use ratatui::{Frame, Terminal};
use std::io::Stdout;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the loop looks at the signal flag and the clock while no key comes.
const POLL: Duration = Duration::from_millis(100);

/// How the live view runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: Duration,
    pub colours: bool,
    /// -t: quit at this instant.
    pub until: Option<Instant>,
}

/// Puts the terminal back: raw mode off, alternate screen left, cursor shown. Safe to call twice.
fn restore_terminal() {
    let _ = execute!(std::io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    let _ = terminal::disable_raw_mode();
}

/// Owns the terminal's raw mode and alternate screen for the view's lifetime.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard> {
        // The hook runs before unwinding drops the guard: restore first, or a panic message would
        // be printed into the alternate screen and vanish with it.
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            default_hook(info);
        }));
        terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        let entered = execute!(std::io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
            .context("cannot switch to the alternate screen");
        if let Err(e) = entered {
            restore_terminal();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore_terminal();
                Err(e).context("cannot size the terminal")
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// What the view shows and where the user is.
struct State {
    rows: Vec<Row>,
    selected: usize,
    paused: bool,
    backend: &'static str,
    interval: Duration,
    colours: bool,
}

impl State {
    fn select_next(&mut self, forward: bool) {
        let n = self.rows.len();
        if n > 0 {
            self.selected = if forward { (self.selected + 1) % n } else { (self.selected + n - 1) % n };
        }
    }
}

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Quit,
    Next,
    Previous,
    TogglePause,
    Nothing,
}

fn action_of(code: KeyCode, modifiers: KeyModifiers) -> Action {
    match code {
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => Action::Quit,
        // Raw mode turns Ctrl-C into a key, not SIGINT.
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
        KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => Action::Next,
        KeyCode::Up | KeyCode::Char('k') | KeyCode::BackTab => Action::Previous,
        KeyCode::Char('p') | KeyCode::Char(' ') => Action::TogglePause,
        _ => Action::Nothing,
    }
}

/// Runs the live view until q, -t or a signal (`stop`).
pub fn run(channels: &mut Channels, settings: &Settings, stop: &AtomicBool) -> Result<()> {
    let mut prev = view::Previous::new();
    let mut state = State {
        rows: view::rows(channels.sample_all(), &mut prev),
        selected: 0,
        paused: false,
        backend: channels.watch().backend_name(),
        interval: settings.interval,
        colours: settings.colours,
    };
    let mut guard = TerminalGuard::enter()?;
    let mut next = Instant::now() + settings.interval;
    loop {
        guard.terminal.draw(|f| draw(f, &state)).context("cannot draw")?;
        // Wait for a key, the next refresh, -t or a signal, whichever comes first.
        loop {
            if stop.load(Ordering::Relaxed) || settings.until.is_some_and(|u| Instant::now() >= u) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= next {
                next = now + settings.interval;
                if !state.paused {
                    state.rows = view::rows(channels.sample_all(), &mut prev);
                    state.selected = state.selected.min(state.rows.len().saturating_sub(1));
                }
                break;
            }
            if !event::poll(POLL.min(next - now)).context("cannot read the terminal")? {
                continue;
            }
            match event::read().context("cannot read the terminal")? {
                Event::Key(k) if k.kind != KeyEventKind::Release => match action_of(k.code, k.modifiers) {
                    Action::Quit => return Ok(()),
                    Action::Next => state.select_next(true),
                    Action::Previous => state.select_next(false),
                    Action::TogglePause => {
                        state.paused = !state.paused;
                        if !state.paused {
                            // Rates restart from now: the paused spell would otherwise be averaged in.
                            view::rows(channels.sample_all(), &mut prev);
                            next = Instant::now() + settings.interval;
                        }
                    }
                    Action::Nothing => continue,
                },
                Event::Resize(..) => {}
                _ => continue,
            }
            break;
        }
    }
}

/// The style of `colour` text, or plain when colours are off.
fn tint(s: &State, colour: Color) -> Style {
    if s.colours {
        Style::default().fg(colour)
    } else {
        Style::default()
    }
}

fn draw(f: &mut Frame, s: &State) {
    let area = f.area();
    let table_height = (s.rows.len() as u16 + 1).min(area.height.saturating_sub(4).max(2));
    let [title, table, detail, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(table_height),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);

    let status = if s.paused { "PAUSED" } else { "live" };
    f.render_widget(
        Paragraph::new(Line::from(format!(
            "rtp_app top: {} {} channel(s), every {:.1} s, {status}",
            s.rows.len(),
            s.backend,
            s.interval.as_secs_f64()
        )))
        .style(Style::default().add_modifier(Modifier::BOLD)),
        title,
    );

    let heading = TableRow::new(COLUMNS.iter().map(|(h, _)| *h))
        .style(tint(s, Color::Cyan).add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let rows = s.rows.iter().map(|r| {
        let style = match r.state {
            "running" if r.loss_pct.is_some_and(|l| l > 0.0) || r.error.is_some() => tint(s, Color::Red),
            "running" => tint(s, Color::Green),
            "error" => tint(s, Color::Red),
            _ => tint(s, Color::Yellow),
        };
        TableRow::new(view::cells(r)).style(style)
    });
    let widths = COLUMNS.iter().enumerate().map(|(i, (_, w))| {
        if i + 1 == COLUMNS.len() {
            Constraint::Fill(1)
        } else {
            Constraint::Length(*w as u16)
        }
    });
    let mut selection = TableState::default().with_selected(Some(s.selected));
    f.render_stateful_widget(
        Table::new(rows, widths).header(heading).row_highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
        table,
        &mut selection,
    );

    let lines: Vec<Line> = match s.rows.get(s.selected) {
        Some(r) => std::iter::once(Line::from(""))
            .chain(view::detail_lines(r, detail.width as usize).into_iter().map(Line::from))
            .collect(),
        None => vec![Line::from("no channel")],
    };
    f.render_widget(Paragraph::new(lines), detail);

    f.render_widget(
        Paragraph::new(Line::from("up/down j/k tab: channel  p/space: pause  q: quit"))
            .style(Style::default().add_modifier(Modifier::REVERSED)),
        keys,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;

    fn state(colours: bool) -> State {
        let r = view::error_row(0, "/dev/rtp_mgr0".into(), "gone".into());
        let mut ok = r.clone();
        ok.error = None;
        ok.state = "running";
        ok.channel = 1;
        State {
            rows: vec![r, ok],
            selected: 1,
            paused: false,
            backend: "kernel",
            interval: Duration::from_secs(1),
            colours,
        }
    }

    #[test]
    fn keys_map_to_actions() {
        assert_eq!(action_of(KeyCode::Char('q'), KeyModifiers::NONE), Action::Quit);
        assert_eq!(action_of(KeyCode::Char('c'), KeyModifiers::CONTROL), Action::Quit);
        assert_eq!(action_of(KeyCode::Char('c'), KeyModifiers::NONE), Action::Nothing);
        assert_eq!(action_of(KeyCode::Char('j'), KeyModifiers::NONE), Action::Next);
        assert_eq!(action_of(KeyCode::BackTab, KeyModifiers::SHIFT), Action::Previous);
        assert_eq!(action_of(KeyCode::Char(' '), KeyModifiers::NONE), Action::TogglePause);
    }

    #[test]
    fn selection_wraps_around() {
        let mut s = state(true);
        s.select_next(true);
        assert_eq!(s.selected, 0);
        s.select_next(false);
        assert_eq!(s.selected, 1);
    }

    #[test]
    fn the_view_fits_80x24_and_shows_the_selected_channel() {
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|f| draw(f, &state(true))).unwrap();
        let buf = t.backend().buffer().clone();
        let text: Vec<String> =
            (0..24).map(|y| (0..80).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>()).collect();
        assert!(text[1].starts_with("CH STATE ATTACH IN/s"), "{:#?}", text);
        assert!(text.iter().any(|l| l.starts_with("Channel 1 /dev/rtp_mgr0")), "{text:#?}");
        assert!(text[23].contains("q: quit"));
        // Without colours no cell has a foreground or background colour.
        t.draw(|f| draw(f, &state(false))).unwrap();
        let buf = t.backend().buffer();
        assert!(buf.content().iter().all(|c| c.fg == Color::Reset && c.bg == Color::Reset));
    }
}
