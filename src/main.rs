fn main() -> std::process::ExitCode {
    pace::run()
}
