from vigile.cli import main

main()
