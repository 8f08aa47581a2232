from sparkscaler.cli import main

main()
